"""The container files: docker-compose.yml against the Compose Specification's JSON schema,
`docker compose config` where the plugin exists, and the Dockerfile's essentials.

No docker engine runs in CI here, so nothing is built: these checks catch a malformed
compose file or a Dockerfile that lost its non-root user, healthcheck or CUDA base.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port

jsonschema = pytest.importorskip("jsonschema")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # Join continuation lines so that each instruction is one line.
    return re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())


def test_compose_file_matches_the_compose_specification(compose) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_compose_file(compose) -> None:
    """The vendored schema really constrains: an unknown key and a wrong type are refused."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    service = next(iter(compose["services"].values()))
    assert list(validator.iter_errors({"services": {"x": {**service, "restart_policy": "always"}}}))
    assert list(validator.iter_errors({"services": {"x": {**service, "ports": "8000:8000"}}}))


def test_compose_essentials(compose) -> None:
    services = compose["services"]
    assert {tuple(s["profiles"]) for s in services.values()} == {("gpu",), ("cpu",)}, "one GPU, one CPU profile"
    for name, service in services.items():
        gpu = "gpu" in service["profiles"]
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        assert any(d.get("driver") == "nvidia" and "gpu" in d["capabilities"] for d in devices) == gpu, name
        if not gpu:
            assert service["environment"]["EXECUTION_PROVIDER"] == "cpu"
        assert "readyz" in " ".join(service["healthcheck"]["test"])
        assert service["restart"] in ("always", "unless-stopped", "on-failure")
        # The published port, the port the service listens on and the healthcheck's all follow PORT.
        assert service["ports"] == ["${PORT:-8000}:${PORT:-8000}"]
        assert service["environment"]["PORT"] == "${PORT:-8000}"
        volumes = [v for v in service["volumes"] if isinstance(v, dict) and v["type"] == "volume"]
        assert volumes and volumes[0]["source"] in compose["volumes"]
        repository = service["environment"]["MODEL_REPOSITORY"].split(":-")[-1].rstrip("}")
        assert repository.startswith(volumes[0]["target"])


def test_compose_healthcheck_probes_the_port_the_service_listens_on(compose, server) -> None:
    """The healthcheck's own command, run as the container runs it, with PORT set."""
    (service, *_) = compose["services"].values()
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python3"]
    command = [sys.executable, *test[2:]]
    env = {**os.environ, "PORT": str(urlsplit(server.url).port)}
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0
    env["PORT"] = str(free_port())  # nothing listens there: unhealthy
    assert subprocess.run(command, env=env, capture_output=True, timeout=30).returncode != 0


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_the_file() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_dockerfile_essentials(dockerfile) -> None:
    bases = re.findall(r"^ARG BASE_IMAGE=(\S+)", dockerfile, re.M) + re.findall(r"^FROM (\S+)", dockerfile, re.M)
    images = [b for b in bases if not b.startswith("$")]
    assert images and all(re.match(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-", b) for b in images), images
    assert all(b.startswith("nvidia/cuda") or b.startswith("${BASE_IMAGE}") for b in bases)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    health = re.search(r"^HEALTHCHECK .*CMD .*python.*/readyz", dockerfile, re.M)
    assert health, "HEALTHCHECK must probe /readyz with python (no curl in the image)"
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.M)
    assert re.search(r'^CMD \["python", "-m", "service"\]$', dockerfile, re.M)
    assert re.search(r"pip install \.", dockerfile)


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "deny by default"
    for needed in ("!pyproject.toml", "!service/", "!models/"):
        assert needed in lines
