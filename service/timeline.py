"""Timelines (/classify?segments=true) whose boundaries the model decides: a change-point search.

Fixed windows cannot serve a model that recognizes a behaviour over its whole extent (a 5 s
fade seen through a 2 s window is mostly "static"), and a window straddling two behaviours
gets a confident but wrong label. So the timeline is chosen among segmentations instead:

- candidate boundaries on a grid of K cells over the video;
- every candidate segment [g_i, g_j] at least `min_s` long is one clip: the model's own T
  frames taken over it by its sampling policy (models.sampling.clip_indices), exactly as a
  video of that length would be classified. The frames are decoded once for all candidates;
- dynamic programming picks the segmentation maximizing the sum over its segments of
  length x log p(segment's top label) minus `penalty` per segment; neighbours with the same
  top label then merge.

A candidate's clip leaves out half a grid cell (at most a quarter of the segment) at each end
that is not the video's own start or end (a guard band): the true change lies anywhere within
a cell of the boundary chosen, and even a few frames of the neighbouring behaviour at a clip's
edge can flip a motion model's answer. The number of candidates is (K - m + 1)(K - m + 2) / 2
for segments of at least m cells; K is the largest grid that keeps it within the caller's
budget, so a request's cost is bounded whatever the video's length (a long video gets coarser
cells).

Suited to a model whose answer depends on the order of its frames; one that pools its frames
names any segment after its most salient frames, so TIMELINE_METHOD=auto gives such a model
fixed windows instead (service.pipelines.ClassifyPipeline.timeline_method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.pipeline import merge_spans

GUARD_CELLS = 0.5  # of a grid cell, left out of a candidate's clip at each interior boundary


@dataclass(frozen=True)
class SearchPlan:
    grid: list[float]  # K + 1 candidate boundaries, 0 .. duration
    min_cells: int  # shortest segment, in cells
    spans: list[tuple[int, int]]  # candidate segments as grid indices (i, j), i < j
    windows: list[tuple[float, float]]  # the time each candidate's clip covers (guard bands applied)


def candidates(cells: int, min_cells: int) -> int:
    """How many segments of at least `min_cells` of `cells` there are."""
    n = cells - min_cells + 1
    return n * (n + 1) // 2 if n > 0 else 0


def plan_search(duration_s: float, min_s: float, cell_s: float, max_clips: int) -> SearchPlan:
    """The grid (cells of at least `cell_s`, segments of at least `min_s`) with at most `max_clips`
    candidate segments."""
    duration_s = max(0.0, float(duration_s))
    cells, min_cells = 1, 1
    for k in range(max(1, math.ceil(duration_s / cell_s - 1e-9)), 0, -1):
        m = min(k, max(1, math.ceil(min_s * k / duration_s - 1e-9))) if duration_s > 0 else k
        if candidates(k, m) <= max(1, max_clips):
            cells, min_cells = k, m
            break
    grid = [duration_s * i / cells for i in range(cells + 1)]
    spans = [(i, j) for i in range(cells) for j in range(i + min_cells, cells + 1)]
    windows = []
    for i, j in spans:
        # At most a quarter of the segment on each side: a one-cell segment keeps half of itself.
        guard = min(GUARD_CELLS, (j - i) / 4) * duration_s / cells
        windows.append((grid[i] + (guard if i > 0 else 0.0), grid[j] - (guard if j < cells else 0.0)))
    return SearchPlan(grid, min_cells, spans, windows)


def best_segmentation(plan: SearchPlan, probs: np.ndarray, penalty: float) -> list[tuple[int, int]]:
    """The candidate segments (grid indices) covering the grid with the highest score."""
    cells = len(plan.grid) - 1
    where = {span: n for n, span in enumerate(plan.spans)}
    logp = np.log(np.clip(np.nan_to_num(probs.astype(np.float64), nan=0.0), 1e-12, 1.0)).max(axis=1)
    best = np.full(cells + 1, -np.inf)
    best[0] = 0.0
    back = [0] * (cells + 1)
    for j in range(1, cells + 1):
        for i in range(0, j - plan.min_cells + 1):
            n = where.get((i, j))
            if n is None or not np.isfinite(best[i]):
                continue
            score = best[i] + (plan.grid[j] - plan.grid[i]) * logp[n] - penalty
            if score > best[j]:
                best[j], back[j] = score, i
    out, j = [], cells
    while j > 0:
        out.append((back[j], j))
        j = back[j]
    return out[::-1]


def segment(plan: SearchPlan, probs: np.ndarray, labels: list[str], k: int, penalty: float) -> list[dict]:
    """API.md's timeline: consecutive segments covering the video, each with its top-k labels.

    probs: the softmax of each candidate of plan.spans, in order. Neighbours with the same top
    label merge (service.pipeline.merge_spans).
    """
    where = {span: n for n, span in enumerate(plan.spans)}
    chosen = best_segmentation(plan, probs, penalty)
    return merge_spans([(plan.grid[i], plan.grid[j], np.nan_to_num(probs[where[(i, j)]].astype(np.float64)))
                        for i, j in chosen], labels, k)
