"""Cluster manifests, checked against their schemas (they are not applied here:
no Kubernetes cluster and no Docker engine on CI machines)."""

import re
import tomllib

import kubernetes_validate
import pytest
import yaml
from compose_spec import PyCompose

from conftest import REPO

K8S = REPO / "infra" / "k8s"
K8S_VERSION = "1.30"
CORE_FILES = [
    "namespace.yaml",
    "mlflow.yaml",
    "prefect.yaml",
    "serve.yaml",
    "secrets.example.yaml",
    "signing-keys.example.yaml",
]


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
    assert {"serve.yaml", "rayservice.yaml"} <= set(k["resources"])


def _find(node, key):
    """Every value under KEY, at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from [v] if k == key else _find(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _find(item, key)


def test_k8s_secret_references_exist_in_the_secret_template_and_nothing_is_exposed():
    """Each required secretKeyRef names a key of secrets.example.yaml; every Service stays
    inside the cluster (ClusterIP): reaching one from outside is an Ingress decision, with TLS."""
    (template,) = _docs("secrets.example.yaml")
    keys = set(template["stringData"])
    for name in sorted(p.name for p in K8S.glob("*.yaml")):
        for ref in _find(_docs(name), "secretKeyRef"):
            assert ref["name"] == template["metadata"]["name"], (name, ref)
            if not ref.get("optional"):
                assert ref["key"] in keys, f"{name}: secret key {ref['key']} is not in the template"
        for doc in _docs(name):
            if doc["kind"] == "Service":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", (name, doc)


def test_serve_deployment_checks_health_and_runs_unprivileged():
    deployment, service = _docs("serve.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["LMOPS_API_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "lmops-api-keys"
    assert "--no-auth" not in c["args"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthz", probe
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    port = int(c["args"][c["args"].index("--port") + 1])
    assert c["ports"][0]["containerPort"] == port
    assert service["spec"]["ports"][0]["targetPort"] == c["ports"][0]["name"]


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


def test_rayservice_fields_match_kuberay_v1():
    """Ray Serve on KubeRay: replicas fit on the GPU group, pods validate as Pods."""
    (svc,) = _docs("rayservice.yaml")
    assert svc["apiVersion"] == "ray.io/v1" and svc["kind"] == "RayService"
    cluster = svc["spec"]["rayClusterConfig"]
    import ray

    assert cluster["rayVersion"] == ray.__version__
    assert cluster["authOptions"]["mode"] == "token"  # the dashboard wants Ray's token
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # replicas never land on the head
    config = yaml.safe_load(svc["spec"]["serveConfigV2"])
    assert config["http_options"]["port"] == 8000
    (app,) = config["applications"]
    assert app["import_path"] == "pipelines.serve_app:app"
    gpus_wanted = sum(
        d["num_replicas"] * d["ray_actor_options"].get("num_gpus", 0) for d in app["deployments"]
    )
    gpus_there = 0
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        for c in group["template"]["spec"]["containers"]:
            gpus_there += group["replicas"] * int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
    assert gpus_there >= gpus_wanted > 0
    for spec in [head["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["workerGroupSpecs"]
    ]:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


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


# Every variable compose.yaml requires (`${VAR:?...}`): its secrets.
COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pw",
    "MLFLOW_ADMIN_PASSWORD": "pw",
    "PREFECT_AUTH_STRING": "admin:pw",
    "RAY_AUTH_TOKEN": "t0ken",
    "LMOPS_API_KEYS": "alice:" + "0" * 64,
}


def _compose(env=COMPOSE_ENV) -> dict:
    raw = (REPO / "infra" / "compose" / "compose.yaml").read_text()
    return yaml.safe_load(_interpolate(raw, env))


def test_compose_file_validates_against_compose_spec():
    raw = (REPO / "infra" / "compose" / "compose.yaml").read_text()
    for name in COMPOSE_ENV:  # a missing secret stops compose before anything starts
        with pytest.raises(KeyError, match=name):
            _interpolate(raw, {k: v for k, v in COMPOSE_ENV.items() if k != name})
    text = _interpolate(raw, COMPOSE_ENV)
    PyCompose.from_yaml(text)  # raises ValueError on a schema violation
    doc = yaml.safe_load(text)
    assert set(doc["services"]) >= {
        "postgres",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "ray-head",
        "ray-worker",
        "serve",
    }
    with pytest.raises(ValueError):
        PyCompose.from_yaml(text.replace("shm_size: 8gb", "shm_size: [8]", 1))


def _argv(svc) -> list[str]:
    return " ".join(
        v if isinstance(v, str) else " ".join(v)
        for v in (svc.get("entrypoint") or "", svc.get("command") or "")
    ).split()


# How each service that compose may publish authenticates its callers, read from its own
# configuration; a service missing here publishes nothing.
AUTHENTICATED = {
    "mlflow": lambda s: (
        ("basic-auth" in _argv(s) or "lmops-auth" in _argv(s))
        and "MLFLOW_AUTH_CONFIG_PATH" in s["environment"]
    ),
    "serve": lambda s: bool(s["environment"].get("LMOPS_API_KEYS")) and "--no-auth" not in _argv(s),
    "prefect-server": lambda s: bool(s["environment"].get("PREFECT_SERVER_API_AUTH_STRING")),
    "ray-head": lambda s: (
        s["environment"].get("RAY_AUTH_MODE") == "token"
        and bool(s["environment"].get("RAY_AUTH_TOKEN"))
    ),
}
# Operator UIs: published on this host's loopback only.
OPERATOR_ONLY = {"prefect-server", "ray-head"}


def _unauthenticated_ports(doc) -> list[str]:
    bad = []
    for name, svc in doc["services"].items():
        for port in svc.get("ports", []):
            if name not in AUTHENTICATED or not AUTHENTICATED[name](svc):
                bad.append(f"{name} publishes {port} without authentication")
            elif name in OPERATOR_ONLY and not str(port).startswith("127.0.0.1:"):
                bad.append(f"{name} publishes {port} beyond 127.0.0.1")
    return bad


def test_compose_publishes_no_port_without_authentication():
    doc = _compose()
    assert _unauthenticated_ports(doc) == []
    assert {n for n, s in doc["services"].items() if s.get("ports")} == set(AUTHENTICATED)
    # the check bites: auth switched off, or a UI opened to the network
    del doc["services"]["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"]
    doc["services"]["ray-head"]["ports"] = ["8265:8265"]
    doc["services"]["postgres"]["ports"] = ["5432:5432"]
    assert len(_unauthenticated_ports(doc)) == 3


def test_compose_clients_present_the_credentials_their_servers_ask_for():
    services = _compose()["services"]
    auth = services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"]
    token = services["ray-head"]["environment"]["RAY_AUTH_TOKEN"]
    for name, svc in services.items():
        env = svc.get("environment", {})
        if "PREFECT_API_URL" in env:
            assert env.get("PREFECT_API_AUTH_STRING") == auth, name
        if "RAY_ADDRESS" in env or _argv(svc)[:1] == ["ray"]:
            assert env.get("RAY_AUTH_MODE") == "token" and env.get("RAY_AUTH_TOKEN") == token, name


def test_prefect_yaml_deployments_point_at_real_flows():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert names == {"nightly-ingest", "weekly-train", "promote-production", "registry-audit"}
    import importlib

    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), func)
        assert set(d["parameters"]) <= set(flow.parameters.properties)
        assert d["work_pool"]["name"] == "lmops-process"
        if "schedules" in d:  # scheduled runs name a committed config
            assert d["schedules"][0]["cron"].count(" ") == 4
        if "config_name" in d["parameters"]:
            config = d["parameters"]["config_name"]
            assert (REPO / "pipelines" / "configs" / f"{config}.toml").exists()
    assert tomllib.loads((REPO / "pyproject.toml").read_text())  # sanity: repo root
