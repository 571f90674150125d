"""Cluster manifests, checked against their schemas (they are not applied here:
no Kubernetes cluster and no Docker engine on CI machines)."""

import re

import kubernetes_validate
import pytest
import tomllib
import yaml
from compose_spec import PyCompose

from conftest import REPO

K8S = REPO / "infra" / "k8s"
K8S_VERSION = "1.30"
CORE_FILES = ["namespace.yaml", "mlflow.yaml", "prefect.yaml", "secrets.example.yaml"]


def _docs(name):
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.mark.parametrize("name", CORE_FILES)
def test_core_manifests_validate_against_kubernetes_schema(name):
    for doc in _docs(name):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_can_fail():
    bad = _docs("mlflow.yaml")[0]
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_kustomization_lists_existing_files():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / r).exists() for r in k["resources"])


def test_raycluster_and_rayjob_fields_match_kuberay_v1():
    """KubeRay CRDs are not in the Kubernetes schema set: check the fields we rely on."""
    (cluster,) = _docs("raycluster.yaml")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    import ray

    assert cluster["spec"]["rayVersion"] == ray.__version__
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265, 10001}
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": group["template"]["spec"],
        }
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    (job,) = _docs("rayjob.yaml")
    assert job["kind"] == "RayJob"
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    assert job["spec"]["entrypoint"].startswith("lmops run --config ")
    config = job["spec"]["entrypoint"].split("--config ")[1].split()[0]
    assert (REPO / "pipelines" / "configs" / f"{config}.toml").exists()
    assert "LMOPS_HOME" in yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]


def _interpolate(text: str, env: dict) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""

    def sub(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        if op == ":-":
            return arg
        raise KeyError(f"{name}: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, text)


def test_compose_file_validates_against_compose_spec():
    raw = (REPO / "infra" / "compose" / "compose.yaml").read_text()
    with pytest.raises(KeyError, match="PASSWORD"):
        _interpolate(raw, {})
    text = _interpolate(raw, {"POSTGRES_PASSWORD": "pw", "MLFLOW_ADMIN_PASSWORD": "pw"})
    PyCompose.from_yaml(text)  # raises ValueError on a schema violation
    doc = yaml.safe_load(text)
    assert set(doc["services"]) >= {
        "postgres",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "ray-head",
        "ray-worker",
    }
    with pytest.raises(ValueError):
        PyCompose.from_yaml(text.replace("shm_size: 8gb", "shm_size: [8]", 1))


def test_prefect_yaml_deployments_point_at_real_flows():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert names == {"nightly-ingest", "weekly-train", "promote-production"}
    import importlib

    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), func)
        assert set(d["parameters"]) <= set(flow.parameters.properties)
        assert d["work_pool"]["name"] == "lmops-process"
        if "schedules" in d:  # scheduled runs name a committed config
            assert d["schedules"][0]["cron"].count(" ") == 4
            config = d["parameters"]["config_name"]
            assert (REPO / "pipelines" / "configs" / f"{config}.toml").exists()
    assert tomllib.loads((REPO / "pyproject.toml").read_text())  # sanity: repo root
