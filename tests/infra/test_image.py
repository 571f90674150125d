"""The Dockerfile and the manifests agree: they name the image that the Dockerfile builds,
and run programs and `lmops` subcommands that exist.

There is no Docker engine on CI machines, so the Dockerfile is parsed here, not built.
"""

import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
IMAGE = f"lmops:{VERSION}"  # what `docker build -t` names it (see the Dockerfile's header)
CUDA_IMAGE = f"{IMAGE}-cuda"
K8S = REPO / "infra" / "k8s"
COMPOSE = REPO / "infra" / "compose" / "compose.yaml"
VENV_BIN = Path(sys.executable).parent  # the image installs the same console scripts


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _last(instruction: str) -> str:
    return [a for i, a in _instructions() if i == instruction][-1]


def _arg_default(name: str) -> str:
    """The default of ARG NAME, the same in every stage that declares it."""
    values = {
        a.split("=", 1)[1] for i, a in _instructions() if i == "ARG" and a.startswith(f"{name}=")
    }
    assert len(values) == 1, f"ARG {name} has the defaults {values} in the Dockerfile's stages"
    return values.pop()


def _registered_subcommands() -> set[str]:
    """Top-level `lmops` commands: every command module registers its own on import."""
    import typer.main

    from pipelines import cli

    return set(typer.main.get_command(cli.app).commands)


def _compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _image_default(image: str) -> str:
    """${LMOPS_IMAGE:-lmops:0.1.0} -> lmops:0.1.0 (what compose runs when it is unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)


def _k8s_containers():
    """(file, kind, container) for every container in infra/k8s, at any depth."""

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "containers":
                    yield from value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                for container in walk(doc):
                    yield path.name, doc["kind"], container


def _own(image: str) -> bool:
    return image.split(":")[0].rsplit("/", 1)[-1] == "lmops"


# --- the Dockerfile -------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_runs_as_a_non_root_user():
    stages = [a for i, a in _instructions() if i == "FROM"]
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    assert any(i == "COPY" and a.startswith("--from=") for i, a in _instructions())
    user = _last("USER").split(":")[0]
    assert user not in {"root", "0"}, f"the image runs as {user}"
    # numeric, so that Kubernetes' runAsNonRoot can check it; the manifests use the same uid
    assert user.isdigit()
    k8s = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert set(re.findall(r"runAsUser: (\d+)", k8s)) == {user}


def test_dockerfile_version_and_torch_index_defaults():
    assert _arg_default("LMOPS_VERSION") == VERSION, "ARG LMOPS_VERSION must follow pyproject"
    assert _arg_default("TORCH_INDEX") == "https://download.pytorch.org/whl/cpu"
    assert _arg_default("TORCH_VERSION") == "2.13.0"  # the Makefile's TORCH_SPEC
    assert "torch==2.13.0" in (REPO / "Makefile").read_text()


def test_entrypoint_is_the_lmops_console_script_and_cmd_serves():
    entrypoint = json.loads(_last("ENTRYPOINT"))
    assert entrypoint == ["lmops"]
    assert "lmops" in PYPROJECT["project"]["scripts"]
    cmd = json.loads(_last("CMD"))
    assert cmd[0] in _registered_subcommands()
    port = cmd[cmd.index("--port") + 1]
    assert f"EXPOSE {port}" in [f"{i} {a}" for i, a in _instructions()]
    health = _last("HEALTHCHECK")
    assert f":{port}/healthz" in health and "curl" not in health
    env = " ".join(a for i, a in _instructions() if i == "ENV")
    assert "LMOPS_HOME=/data/lmops" in env


def test_dockerignore_keeps_what_the_dockerfile_copies():
    """The context is an allow-list: every COPY source (not --from) must be let in."""
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for instruction, args in _instructions():
        if instruction == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for source in sources:
                assert source in allowed, f"COPY {source}: .dockerignore leaves it out"
                assert (REPO / source).exists(), source
    assert ".venv" not in allowed and ".lmops" not in allowed


# --- the manifests name that image ----------------------------------------------------


def test_compose_and_k8s_run_the_image_that_the_dockerfile_builds():
    seen = set()
    for name, svc in _compose_services().items():
        image = _image_default(svc["image"])
        if _own(image):
            assert image == IMAGE, f"compose service {name} runs {image}, the build makes {IMAGE}"
            seen.add(image)
    for name, _kind, c in _k8s_containers():
        if _own(c["image"]):
            gpu = "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
            want = CUDA_IMAGE if gpu else IMAGE
            assert c["image"] == want, f"{name}: {c['name']} runs {c['image']}, not {want}"
            seen.add(c["image"])
    assert seen == {IMAGE, CUDA_IMAGE}


def _lmops_argv(name, program, args):
    """The subcommand when a container runs lmops; checks that any other program exists."""
    if program is None or program == ["lmops"]:  # the image's ENTRYPOINT
        return (args or json.loads(_last("CMD")))[0]
    if program[0] == "lmops":
        return program[1]
    assert (VENV_BIN / program[0]).exists(), f"{name} runs {program[0]}: not in the image"
    return None


def _words(value):
    return shlex.split(value) if isinstance(value, str) else value


def test_every_lmops_command_names_a_registered_subcommand():
    registered = _registered_subcommands()
    used = {}
    for name, svc in _compose_services().items():
        if _own(_image_default(svc["image"])):
            entry, cmd = _words(svc.get("entrypoint")), _words(svc.get("command"))
            sub = _lmops_argv(f"compose {name}", entry, cmd)
            if sub:
                used[f"compose {name}"] = sub
    for name, kind, c in _k8s_containers():
        if _own(c["image"]) and not kind.startswith("Ray"):  # KubeRay starts Ray itself
            sub = _lmops_argv(f"{name} {c['name']}", c.get("command"), c.get("args"))
            if sub:
                used[f"{name} {c['name']}"] = sub
    (job,) = [d for d in yaml.safe_load_all((K8S / "rayjob.yaml").read_text()) if d]
    used["rayjob.yaml entrypoint"] = _lmops_argv("rayjob", _words(job["spec"]["entrypoint"]), [])
    used["Dockerfile CMD"] = json.loads(_last("CMD"))[0]
    assert "serve" in used.values() and "run" in used.values()
    unknown = {where: sub for where, sub in used.items() if sub not in registered}
    assert not unknown, f"not `lmops` subcommands ({sorted(registered)}): {unknown}"


# --- Ray Serve: the same app ----------------------------------------------------------


def _serve_apps():
    (service,) = [d for d in yaml.safe_load_all((K8S / "rayservice.yaml").read_text()) if d]
    return yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]


def test_rayservice_import_path_is_the_serving_app_with_signature_checks():
    (app,) = _serve_apps()
    module, attr = app["import_path"].split(":")
    assert module == "pipelines.serve_app" and attr == "app"
    assert (REPO / (module.replace(".", "/") + ".py")).exists()


def test_rayservice_config_fits_the_application_it_imports():
    """Build the app the way Ray Serve does for serveConfigV2 (no cluster is started): the
    args must be accepted, and each configured deployment must exist in the app."""
    pytest.importorskip("ray.serve")
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    for app in _serve_apps():
        target = import_attr(app["import_path"])
        built = build_app(
            call_user_app_builder_with_args_if_necessary(target, app.get("args") or {}),
            name=app["name"],
        )
        names = {d.name for d in built.deployments}
        for dep in app["deployments"]:
            assert dep["name"] in names, f"serveConfigV2 names {dep['name']}; the app has {names}"
            assert dep["num_replicas"] >= 1 and dep["ray_actor_options"]["num_gpus"] >= 1
