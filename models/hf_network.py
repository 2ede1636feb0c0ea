"""Hugging Face video classifiers behind the model contract (frames -> logits, attention, embeddings).

`HFVideoClassifier` wraps a `transformers` VideoMAE, TimeSformer or ViViT classifier. Its
`logits` are the Hugging Face model's own forward; two forward hooks record, during that
same forward, the last layer's input to its attention (or its attention weights) and the
backbone's last hidden state, from which the per-frame attention and embeddings are
computed. Nothing in the Hugging Face model is changed, so the logits are exactly
`transformers`' logits.

Per-frame attention (rows sum to 1), from each architecture's own last-layer attention:

- ViViT: the CLS token's attention over the patch tokens, averaged over heads, summed per
  tubelet slot and renormalised over the patches (the CLS token's weight on itself is
  left out); a tubelet's share is spread evenly over its `tubelet_size[0]` frames.
- TimeSformer, divided space-time attention: in the last layer, the CLS token attends,
  once per frame, to that frame's patches (spatial attention); those patch tokens have
  just mixed the same location across frames (temporal attention). Frame f's share is
  the CLS token's spatial attention on frame f's patches, averaged over heads and over
  the T per-frame CLS copies (the layer averages those copies too), carried back through
  the same layer's temporal attention with its residual, as attention rollout does:
  M = (I + A_temporal) / 2 per patch location, averaged over heads. Joint space-time
  attention: the CLS token's attention over all patch tokens, summed per frame.
- VideoMAE (no CLS token; the head mean-pools every token): the last layer's attention
  *received* by the tokens of each temporal slot, averaged over heads and over all
  queries (every token is a query, as every token goes into the mean). A checkpoint with
  `use_mean_pooling=False` classifies token 0, so its row is used instead. A tubelet
  (2 frames for the released checkpoints) spreads its share evenly over its frames.

Embeddings [B, T, D]: the backbone's last hidden state (after its final LayerNorm where
the model has one) averaged over each frame's (or tubelet's) patch tokens; the frames of
one tubelet share its vector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.registry import register_architecture

# transformers class name -> registry name stored in model.json's `architecture`.
SUPPORTED = {
    "VideoMAEForVideoClassification": "hf:videomae",
    "TimesformerForVideoClassification": "hf:timesformer",
    "VivitForVideoClassification": "hf:vivit",
}


def _tuple2(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def _layers(backbone: nn.Module) -> nn.ModuleList:
    # transformers 5 moved some encoders' blocks from `encoder.layer` to `layers` (ViViT).
    layers = getattr(backbone, "layers", None)
    return layers if layers is not None else backbone.encoder.layer


class HFVideoClassifier(nn.Module):
    """frames float32 [B, T, 3, H, W] -> logits [B, C], attention [B, T], embeddings [B, T, D]."""

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        name = type(hf_model).__name__
        if name not in SUPPORTED:
            raise ValueError(f"{name} is not supported; supported: {', '.join(SUPPORTED)}")
        self.hf = hf_model.eval()
        self.kind = SUPPORTED[name]
        cfg = hf_model.config
        self.num_frames = int(cfg.num_frames)
        self.height, self.width = _tuple2(cfg.image_size)
        self._seen: dict[str, torch.Tensor] = {}
        if self.kind == "hf:videomae":
            backbone, patch = hf_model.videomae, _tuple2(cfg.patch_size)
            self.tubelet = int(cfg.tubelet_size)
            self.mean_pooled = bool(cfg.use_mean_pooling)
            _layers(backbone)[-1].attention.attention.register_forward_hook(self._keep_output("probs"))
        elif self.kind == "hf:vivit":
            backbone, patch = hf_model.vivit, (int(cfg.tubelet_size[1]), int(cfg.tubelet_size[2]))
            self.tubelet = int(cfg.tubelet_size[0])
            _layers(backbone)[-1].attention.register_forward_hook(self._keep_output("probs"))
        else:
            backbone, patch = hf_model.timesformer, _tuple2(cfg.patch_size)
            self.tubelet = 1
            self.attention_type = cfg.attention_type
            if self.attention_type == "space_only":
                # transformers' space_only path classifies B*T clips, not B videos: nothing to export.
                raise ValueError("TimeSformer with attention_type='space_only' is not supported")
            last = _layers(backbone)[-1]
            # TimesformerSelfAttention returns weights only when asked for them by every layer;
            # recording the inputs of the last layer's two attentions and recomputing their
            # softmax (one extra q/k projection of one layer) leaves the model untouched.
            last.attention.attention.register_forward_hook(self._keep_input("spatial_in"))
            if self.attention_type == "divided_space_time":
                last.temporal_attention.attention.register_forward_hook(self._keep_input("temporal_in"))
        backbone.register_forward_hook(self._keep_last_hidden)
        self.patches = (self.height // patch[0]) * (self.width // patch[1])  # per frame or tubelet slot
        self.slots = self.num_frames // self.tubelet

    def _keep_output(self, key: str):
        def hook(module: nn.Module, args: tuple, output: tuple) -> None:
            self._seen[key] = output[1]

        return hook

    def _keep_input(self, key: str):
        def hook(module: nn.Module, args: tuple, output: tuple) -> None:
            self._seen[key] = args[0]

        return hook

    def _keep_last_hidden(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._seen["hidden"] = output[0]

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._seen.clear()
        logits = self.hf(pixel_values=frames).logits
        seen, self._seen = self._seen, {}
        if seen.get("probs", 0) is None:
            raise RuntimeError("no attention weights were recorded: load the model with attn_implementation='eager'")
        hidden = seen["hidden"]
        b = hidden.shape[0]
        if self.kind == "hf:timesformer":
            attention = self._timesformer_attention(seen, b)
            # tokens after CLS are ordered (patch, frame)
            tokens = hidden[:, 1:].reshape(b, self.patches, self.num_frames, -1)
            embeddings = tokens.mean(1)
        else:
            probs = seen["probs"].mean(1)  # heads -> [B, N(+1), N(+1)]
            if self.kind == "hf:vivit":
                received = probs[:, 0, 1:]  # the CLS token's row, over patches only
                tokens = hidden[:, 1:]
            else:
                received = probs.mean(1) if self.mean_pooled else probs[:, 0]
                tokens = hidden
            slots = received.reshape(b, self.slots, self.patches).sum(-1)
            slots = slots / slots.sum(-1, keepdim=True)
            # tokens are ordered (slot, patch); one slot covers `tubelet` consecutive frames
            attention = slots.repeat_interleave(self.tubelet, dim=1) / self.tubelet
            embeddings = tokens.reshape(b, self.slots, self.patches, -1).mean(2)
            embeddings = embeddings.repeat_interleave(self.tubelet, dim=1)
        return logits, attention, embeddings

    def _softmax_of(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """TimesformerSelfAttention's weights for input x [N, L, D], averaged over heads: [N, L, L]."""
        n, length, dim = x.shape
        qkv = module.qkv(x).reshape(n, length, 3, module.num_heads, dim // module.num_heads).permute(2, 0, 3, 1, 4)
        return ((qkv[0] @ qkv[1].transpose(-2, -1)) * module.scale).softmax(-1).mean(1)

    def _timesformer_attention(self, seen: dict[str, torch.Tensor], b: int) -> torch.Tensor:
        last = _layers(self.hf.timesformer)[-1]
        t, p = self.num_frames, self.patches
        spatial = self._softmax_of(last.attention.attention, seen["spatial_in"])
        if self.attention_type == "joint_space_time":
            share = spatial[:, 0, 1:].reshape(b, p, t).sum(1)
        else:
            # spatial: [B*T, 1+P, 1+P], one CLS copy per frame; its row over frame f's patches
            cls = spatial[:, 0, 1:].reshape(b, t, p)
            temporal = self._softmax_of(last.temporal_attention.attention, seen["temporal_in"])
            temporal = temporal.reshape(b, p, t, t)  # [B, patch, query frame, key frame]
            eye = torch.eye(t, dtype=temporal.dtype, device=temporal.device)
            rollout = 0.5 * (temporal + eye)
            share = torch.einsum("bfp,bpfg->bg", cls, rollout)
        return share / share.sum(-1, keepdim=True)


def _hf_class(architecture: str) -> type:
    import transformers

    for class_name, name in SUPPORTED.items():
        if name == architecture:
            return getattr(transformers, class_name)
    raise KeyError(architecture)


def build_hf(architecture: str, config: dict[str, Any]) -> HFVideoClassifier:
    """A randomly initialised wrapped model from a transformers config dict (weights come from elsewhere)."""
    cls = _hf_class(architecture)
    hf_config = cls.config_class.from_dict(config)
    hf_config._attn_implementation = "eager"
    return HFVideoClassifier(cls(hf_config))


for _name in SUPPORTED.values():
    register_architecture(_name)(lambda config, _name=_name: build_hf(_name, config))
