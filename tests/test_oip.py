"""Open Inference Protocol inference, driven by Triton's own HTTP client against a real server."""

from __future__ import annotations

import re

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import REAL_MODEL, ThreadServer

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

SHAPE = (16, 3, 64, 64)


@pytest.fixture(scope="module")
def triton(server: ThreadServer):
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def reference() -> ort.InferenceSession:
    """The same ONNX file run directly: what the service must return for the same tensor."""
    return ort.InferenceSession(str(REAL_MODEL / "model.onnx"), providers=["CPUExecutionProvider"])


def _clips(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *SHAPE)).astype(np.float32)


def test_health_and_metadata_through_tritonclient(triton) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("motion") and triton.is_model_ready("motion", "2")
    assert not triton.is_model_ready("nope") and not triton.is_model_ready("motion", "1")
    assert triton.get_model_metadata("motion", "2")["versions"] == ["2"]
    meta = triton.get_model_metadata("motion")
    assert meta["name"] == "motion" and meta["versions"] == ["2"]
    assert meta["inputs"] == [{"name": "frames", "datatype": "FP32", "shape": [-1, *SHAPE]}]
    assert [o["name"] for o in meta["outputs"]] == ["logits", "attention", "embeddings", "features"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_returns_what_the_model_computes(triton, reference, server: ThreadServer, binary: bool) -> None:
    x = _clips(3, seed=int(binary))
    frames = httpclient.InferInput("frames", list(x.shape), "FP32")
    frames.set_data_from_numpy(x, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("logits", "attention", "embeddings")]
    before = _batched_clips(server)
    result = triton.infer("motion", [frames], outputs=outputs, request_id="r1")
    assert result.get_response()["model_name"] == "motion" and result.get_response()["id"] == "r1"
    want = dict(zip(("logits", "attention", "embeddings"),
                    reference.run(["logits", "attention", "embeddings"], {"frames": x}), strict=True))
    for name, expected in want.items():
        got = result.as_numpy(name)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Through the model's batcher: its batch-size histogram counted the three clips.
    assert _batched_clips(server) - before == 3


def test_infer_without_requested_outputs_returns_all_of_them(triton) -> None:
    x = _clips(1, seed=7)
    frames = httpclient.InferInput("frames", list(x.shape), "FP32")
    frames.set_data_from_numpy(x)
    result = triton.infer("motion", [frames], model_version="2")
    assert result.as_numpy("logits").shape == (1, 10) and result.as_numpy("embeddings").shape[:2] == (1, 16)


@pytest.mark.parametrize(
    ("name", "datatype", "array", "message"),
    [
        ("frames", "FP64", np.zeros((1, *SHAPE), np.float64), "must have datatype FP32, not FP64"),
        ("frames", "FP32", np.zeros((1, 8, 3, 64, 64), np.float32), "takes [B, 16, 3, 64, 64]"),
        ("pixels", "FP32", np.zeros((1, *SHAPE), np.float32), "one input named 'frames', not: pixels"),
    ],
)
def test_mismatched_inputs_are_400_with_a_clear_detail(triton, name, datatype, array, message) -> None:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    with pytest.raises(InferenceServerException) as caught:
        triton.infer("motion", [tensor])
    assert caught.value.status() == "400" and message in caught.value.message()


def test_raw_json_errors_are_problem_json(server: ThreadServer, client: httpx.Client) -> None:
    url = server.url + "/v2/models/motion/infer"
    frames = {"name": "frames", "shape": [1, *SHAPE], "datatype": "FP32", "data": [0.0] * 10}
    r = client.post(url, json={"inputs": [frames]})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert "has 10 values; shape [1, 16, 3, 64, 64] needs 196608" in r.json()["detail"]
    r = client.post(url, json={"inputs": [{**frames, "data": [0.0] * 196608}], "outputs": [{"name": "scores"}]})
    assert r.status_code == 400 and "no output scores" in r.json()["error"]
    r = client.post(url, content=b"{not json")
    assert r.status_code == 400 and "not an Open Inference Protocol request" in r.json()["detail"]
    r = client.post(server.url + "/v2/models/nope/infer", json={"inputs": [frames]})
    assert r.status_code == 404


def _batched_clips(server: ThreadServer) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(r'^batcher_batch_size_sum\{model="motion"\} ([0-9.e+-]+)$', text, re.M)
    assert match, "no batch-size series for motion"
    return float(match.group(1))
