"""model.json: everything the service needs to use an exported model without torch.

A model directory is self-describing, as in Triton's model repository: `model.onnx`
plus this manifest. Point the service at any such directory and it serves it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

MANIFEST_FILE = "model.json"


class ModelOutputs(BaseModel):
    """Names of the graph's outputs (DESIGN.md: the model contract)."""

    logits: str = "logits"
    attention: str = "attention"
    embeddings: str = "embeddings"
    # Optional: per-frame pooled inner activations [B, T, F] that `domain` reads (models/domain.py,
    # models/features_output.py); a model without it serves the same way.
    features: str | None = None


class SamplingPolicy(BaseModel):
    """How a clip's T frames are taken from a video.

    `uniform`: the middle of T equal parts of the video (or of a clip window): the default,
    and what the shipped models and most Hugging Face checkpoints evaluate with.
    `stride`: T consecutive frames `stride` apart, centred in the window (a model trained on
    frame-stride clips). `fps`: T frames at `fps` frames per second, centred in the window.
    """

    policy: Literal["uniform", "stride", "fps"] = "uniform"
    stride: int | None = Field(default=None, gt=0)
    fps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs_its_parameter(self) -> SamplingPolicy:
        if self.policy == "stride" and self.stride is None:
            raise ValueError("sampling policy 'stride' needs `stride`")
        if self.policy == "fps" and self.fps is None:
            raise ValueError("sampling policy 'fps' needs `fps`")
        return self


class DomainSpec(BaseModel):
    """Statistics of the training data, for the `domain` answer (API.md).

    `file` (in the model directory) holds the statistics; `distance` of a video is compared
    with `threshold`, calibrated at export on held-out in-domain clips.
    """

    method: str = Field(description="e.g. 'mahalanobis' (class-conditional Gaussians of the pooled embedding)")
    file: str = "domain.npz"
    threshold: float
    calibration: dict = Field(default_factory=dict, description="how the threshold was chosen, and on what")


class ModelManifest(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = "1"
    labels: list[str] = Field(min_length=1)
    num_frames: int = Field(gt=0, description="T: frames per clip")
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    # stretch: the whole frame scaled to HxW; shorter_side_crop: shorter side scaled to
    # `resize_shorter` (default min(H, W)), then a centre HxW crop (ImageNet, HF processors);
    # letterbox: fitted inside HxW on black.
    resize: Literal["stretch", "shorter_side_crop", "letterbox"] = "stretch"
    resize_shorter: int | None = Field(default=None, gt=0, description="S for shorter_side_crop")
    rescale: float = Field(default=1.0 / 255.0, gt=0, description="uint8 pixel -> value range, before mean/std")
    sampling: SamplingPolicy = SamplingPolicy()
    architecture: str | None = Field(default=None, description="registry name of the network that was exported")
    domain: DomainSpec | None = None
    input_name: str = "frames"
    outputs: ModelOutputs = ModelOutputs()
    onnx_file: str = "model.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    precision: Literal["fp32", "fp16"] = "fp32"
    metrics: dict = Field(default_factory=dict, description="training metrics it shipped with")
    network: dict = Field(default_factory=dict, description="hyperparameters it was built with")
    training: dict = Field(default_factory=dict, description="how it was trained")

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("std values must be positive")
        return v

    @model_validator(mode="after")
    def _unique_labels(self) -> ModelManifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        return self

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path, verify: bool = True) -> ModelManifest:
        """Read `directory`/model.json; with `verify`, check the ONNX file's sha256."""
        directory = Path(directory)
        manifest = cls.model_validate_json((directory / MANIFEST_FILE).read_text())
        if verify:
            actual = file_sha256(directory / manifest.onnx_file)
            if actual != manifest.sha256:
                raise ValueError(
                    f"{directory / manifest.onnx_file} does not match the sha256 in its "
                    f"model.json ({actual} != {manifest.sha256}): re-export the model"
                )
        return manifest


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
