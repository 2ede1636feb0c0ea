"""On-screen text: RapidOCR (PP-OCRv6 detection + recognition on ONNX Runtime) on video frames,
with the same text seen in several frames of a shot merged into one entry."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service import model_files

OCR_NAME, OCR_VERSION = "rapidocr-ppocrv6-small", "3.10.0"


@dataclass(frozen=True)
class TextBox:
    text: str
    score: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame's pixels


class OcrModel:
    def __init__(self, min_score: float = 0.5, det_max_side: int = 960, threads: int = 0,
                 paths: dict[str, Path] | None = None) -> None:
        from rapidocr import RapidOCR

        paths = paths or model_files.rapidocr_paths()  # sha256-checked before ONNX Runtime sees them
        t = time.perf_counter()
        self.engine = RapidOCR(params={
            "Global.log_level": "warning",
            "Global.text_score": min_score,
            "Det.model_path": str(paths["det"]),
            "Rec.model_path": str(paths["rec"]),
            "Cls.model_path": str(paths["cls"]),
            # rapidocr's default upsamples the shorter side to 736 px ("min"): a 640x360 frame
            # became 1308x736. "max" only ever shrinks, and video text is rarely that small.
            "Det.limit_type": "max",
            "Det.limit_side_len": det_max_side,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
        })
        self.load_s = time.perf_counter() - t
        self.min_score = min_score
        self.name, self.version = OCR_NAME, OCR_VERSION

    def read(self, rgb: np.ndarray, scale: float = 1.0) -> list[TextBox]:
        """Text lines in an RGB frame; boxes multiplied by `scale` (to undo a downscale)."""
        out = self.engine(np.ascontiguousarray(rgb[..., ::-1]))  # RapidOCR takes arrays as BGR
        if out is None or out.boxes is None or out.txts is None:
            return []
        found = []
        for poly, text, score in zip(out.boxes, out.txts, out.scores):
            text = str(text).strip()
            if not text or float(score) < self.min_score:
                continue
            pts = np.asarray(poly, np.float64) * scale
            x0, y0 = np.floor(pts.min(0)).astype(int)
            x1, y1 = np.ceil(pts.max(0)).astype(int)
            found.append(TextBox(text, round(float(score), 4), (int(x0), int(y0), int(x1), int(y1))))
        return found


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1)


def merge_repeats(per_frame: list[list[TextBox]], min_iou: float = 0.3) -> list[TextBox]:
    """One entry per piece of text across the frames of a shot: the same words at about the same
    place in another frame are a repeat (the best-scored reading is kept); the same words
    elsewhere on screen are another entry. Reading order: top to bottom, left to right."""
    merged: list[TextBox] = []
    for boxes in per_frame:
        for tb in boxes:
            for i, m in enumerate(merged):
                if _norm(m.text) == _norm(tb.text) and _iou(m.box, tb.box) >= min_iou:
                    if tb.score > m.score:
                        merged[i] = tb
                    break
            else:
                merged.append(tb)
    return reading_order(merged)


def reading_order(boxes: list[TextBox]) -> list[TextBox]:
    """Rows top to bottom (boxes whose vertical centres are within half a line height share a
    row, whatever a pixel of detector jitter says), each row left to right."""
    rows: list[list[TextBox]] = []
    for tb in sorted(boxes, key=lambda t: (t.box[1] + t.box[3]) / 2):
        cy, h = (tb.box[1] + tb.box[3]) / 2, max(1, tb.box[3] - tb.box[1])
        if rows:
            last = rows[-1][0]
            if abs(cy - (last.box[1] + last.box[3]) / 2) < 0.5 * min(h, max(1, last.box[3] - last.box[1])):
                rows[-1].append(tb)
                continue
        rows.append([tb])
    return [tb for row in rows for tb in sorted(row, key=lambda t: t.box[0])]


def clip_box(box: tuple[int, int, int, int], width: int, height: int) -> list[int]:
    x0, y0, x1, y1 = box
    return [max(0, min(width, x0)), max(0, min(height, y0)), max(0, min(width, x1)), max(0, min(height, y1))]
