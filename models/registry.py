"""Architectures by name, as timm registers its models.

A network module registers a builder under a name; the name is stored in the checkpoint
and in `model.json` (`architecture`), so training, export and evaluation look it up
instead of hard-coding one class. Builders take the network's config as a dict (what the
checkpoint stores) and return an `nn.Module` that follows the model contract
(DESIGN.md: frames [B, T, 3, H, W] -> logits, attention, embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Builder = Callable[[dict[str, Any]], Any]

_ARCHITECTURES: dict[str, Builder] = {}


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not builder:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHITECTURES[name] = builder
        return builder

    return add


def _load_builtin() -> None:
    # Importing a network module registers it; torch is imported only here, on demand.
    # (models.hf_network imports transformers only when one of its networks is built)
    import models.efficientnet
    import models.hf_network
    import models.network  # noqa: F401


def list_architectures() -> list[str]:
    _load_builtin()
    return sorted(_ARCHITECTURES)


def build_network(name: str, config: dict[str, Any]) -> Any:
    _load_builtin()
    if name not in _ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; registered: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[name](config)
