"""Read a Hugging Face video classifier: its config, weights and processor, and what model.json says of them.

A SOURCE is a hub id (downloaded where the hub can be reached) or a local folder written
by `save_pretrained`, with the processor's `preprocessor_config.json` (an image processor,
as the released VideoMAE, TimeSformer and ViViT checkpoints have) or
`video_preprocessor_config.json` beside the model's `config.json`.

How the processor's settings map onto model.json (the service resizes in FFmpeg's scaler):

| processor | model.json |
|---|---|
| `size.shortest_edge` S + centre crop `crop_size` HxW | `resize: shorter_side_crop`, `resize_shorter: S`, H, W |
| `size` {height, width} = the model's input, no crop | `resize: stretch` |
| `rescale_factor` (1 without `do_rescale`) | `rescale` |
| `image_mean` / `image_std` (0 / 1 without `do_normalize`) | `mean` / `std` |
| ViViT's `offset` (x * rescale - 1, then normalise) | `mean` + 1 (same arithmetic, one step) |
| `resample` (PIL bilinear, bicubic, ...) | not reproduced: FFmpeg's area filter; the difference is measured at export |
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from models.hf_network import SUPPORTED

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class HFSourceError(ValueError):
    """The source cannot be converted (unsupported architecture, missing or unusable processor config)."""


@dataclass(frozen=True)
class ProcessorMapping:
    """What model.json must say for the service to feed the model as its processor would."""

    height: int
    width: int
    resize: str
    resize_shorter: int | None
    rescale: float
    mean: list[float]
    std: list[float]
    resample: str
    processor: dict[str, Any] = field(default_factory=dict)  # the processor's settings, as read


def _supported_list() -> str:
    return ", ".join(SUPPORTED)


def load_config(source: str) -> tuple[Any, str]:
    """(transformers config, class name) of SOURCE; an unsupported model is refused before any weights load."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise HFSourceError(f"cannot read a transformers config from {source!r}: {exc}") from exc
    names = list(getattr(config, "architectures", None) or [])
    for name in names:
        if name in SUPPORTED:
            return config, name
    found = ", ".join(names) or f"no `architectures` in config.json (model_type {config.model_type!r})"
    raise HFSourceError(
        f"{source!r} is {found}; only video classifiers can be converted: {_supported_list()}"
    )


def load_model(source: str, class_name: str) -> Any:
    """The classifier in fp32, eval mode, with eager attention (the only kind that returns its weights)."""
    import transformers

    cls = getattr(transformers, class_name)
    return cls.from_pretrained(source, attn_implementation="eager", dtype="float32").eval()


def load_processor(source: str) -> tuple[Any | None, dict[str, Any]]:
    """(the runnable processor or None, its settings). The processor is what parity is checked against."""
    settings: dict[str, Any] | None = None
    processor = None
    try:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(source)
        settings = processor.to_dict()
    except (OSError, ValueError, ImportError, KeyError):
        processor = None
    if settings is None:
        settings = _read_processor_json(source)
    return processor, settings


def _read_processor_json(source: str) -> dict[str, Any]:
    from transformers.utils import cached_file

    for name in PROCESSOR_FILES:
        try:
            path = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
        except OSError:
            path = None
        if path:
            with open(path) as f:
                return json.load(f)
    raise HFSourceError(
        f"{source!r} has no processor config ({' or '.join(PROCESSOR_FILES)}): save the model's processor "
        "beside it (processor.save_pretrained(folder)) so that its resize, crop and normalisation are known"
    )


def _size(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, int):
        return {"height": value, "width": value}
    if not isinstance(value, dict):
        value = {k: getattr(value, k, None) for k in ("shortest_edge", "height", "width", "longest_edge")}
    return {k: int(v) for k, v in value.items() if v is not None}


def _need(settings: dict[str, Any], key: str) -> Any:
    if settings.get(key) is None:
        raise HFSourceError(f"the processor config has no {key!r}: add it, or save the processor with save_pretrained")
    return settings[key]


def preprocessing_from(settings: dict[str, Any], config: Any, class_name: str) -> ProcessorMapping:
    """model.json's input fields from the processor's settings, checked against the model's input size."""
    model_h, model_w = (
        tuple(config.image_size) if isinstance(config.image_size, (list, tuple)) else (config.image_size,) * 2
    )
    size = _size(settings.get("size"))
    crop = _size(settings.get("crop_size")) if settings.get("do_center_crop", True) else {}
    if not settings.get("do_resize", True):
        raise HFSourceError("the processor does not resize (do_resize=false): the service must resize, so convert "
                            "only models whose processor resizes to the model's input size")
    if "shortest_edge" in size:
        if not crop:
            raise HFSourceError(
                f"the processor scales the shorter side to {size['shortest_edge']} without a centre crop, so its "
                f"output is not the model's fixed {model_h}x{model_w}: not supported"
            )
        resize, shorter, (h, w) = "shorter_side_crop", size["shortest_edge"], (crop["height"], crop["width"])
        if shorter < min(h, w):
            raise HFSourceError(f"shortest_edge {shorter} is smaller than the {h}x{w} crop")
    elif "height" in size and "width" in size:
        if crop and (crop["height"], crop["width"]) != (size["height"], size["width"]):
            raise HFSourceError(
                f"the processor resizes to {size['height']}x{size['width']} and then crops "
                f"{crop['height']}x{crop['width']}: not supported (only shorter side + crop, or a plain resize)"
            )
        resize, shorter, (h, w) = "stretch", None, (size["height"], size["width"])
    else:
        raise HFSourceError(f"unsupported processor size {settings.get('size')!r}")
    if (h, w) != (model_h, model_w):
        raise HFSourceError(f"the processor makes {h}x{w} frames but the model takes {model_h}x{model_w}")
    rescale = float(_need(settings, "rescale_factor")) if settings.get("do_rescale", True) else 1.0
    if settings.get("do_normalize", True):
        mean = [float(v) for v in _need(settings, "image_mean")]
        std = [float(v) for v in _need(settings, "image_std")]
    else:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    offset = settings.get("offset", class_name == "VivitForVideoClassification" and "offset" not in settings)
    if offset and settings.get("do_rescale", True):
        # ViViT: (x * rescale - 1 - mean) / std == (x * rescale - (mean + 1)) / std
        mean = [m + 1.0 for m in mean]
    resample = settings.get("resample", 2)
    resample = _RESAMPLE.get(int(resample), str(resample)) if isinstance(resample, int) else str(resample)
    kept = json.loads(json.dumps(settings, default=str))
    return ProcessorMapping(height=h, width=w, resize=resize, resize_shorter=shorter, rescale=rescale,
                         mean=mean, std=std, resample=resample, processor=kept)


def labels_of(config: Any) -> list[str]:
    """id2label's names ordered by id; ids must be 0..C-1."""
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    if sorted(id2label) != list(range(len(id2label))) or not id2label:
        raise HFSourceError(f"config.id2label must name every class id 0..C-1 (got ids {sorted(id2label)[:10]}...)")
    labels = [id2label[i] for i in range(len(id2label))]
    # model.json needs unique labels; a repeated name keeps its id so that no class is lost.
    return [f"{name}#{i}" if labels.count(name) > 1 else name for i, name in enumerate(labels)]
