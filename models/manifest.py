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


class ModelManifest(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = "1"
    labels: list[str] = Field(min_length=1)
    num_frames: int = Field(gt=0, description="T: frames per clip")
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    resize: Literal["stretch", "letterbox"] = "stretch"
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
