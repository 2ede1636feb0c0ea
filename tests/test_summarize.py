"""service.summarize on real H.264 files with known scenes, through the real model.

The videos come from bench.scenegen (the benchmark's generator) with fixed scene kinds so each
test knows exactly where its scenes are; they are small (160x96, 25 fps) to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from bench.scenegen import SceneVideo, generate_video
from models.frames import probe_video, read_frames
from models.sampling import plan_summary_indices
from service.pipelines import Pipelines
from service.schemas import SummaryKeyframe, SummarySegment
from service.summarize import jpeg_data_uri, summarize

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIRS = (ROOT / "models" / "motion",)
SIZE = (96, 160)


@pytest.fixture(scope="module")
def model() -> Pipelines:
    return Pipelines.local(MODEL_DIRS[0])


def run_summary(
    model: Pipelines, path: Path, max_keyframes: int = 8
) -> tuple[list[SummarySegment], list[SummaryKeyframe]]:
    """The service's own /summarize pipeline, in-process: plan, decode at the model size, model, summarize."""
    answer = asyncio.run(model.summarize(path, max_keyframes=max_keyframes))
    info = probe_video(path)
    check_contract(answer.segments, answer.keyframes, info.duration_s, info.frame_count, max_keyframes)
    return answer.segments, answer.keyframes


def check_contract(
    segments: list[SummarySegment],
    keyframes: list[SummaryKeyframe],
    duration_s: float,
    frame_count: int,
    max_keyframes: int,
) -> None:
    """API.md: segments consecutive and covering the video; keyframes in time order, inside their
    segments, at most max_keyframes and one per segment, scores in [0, 1]."""
    assert segments, "no segments"
    assert segments[0].start_s == 0.0 and segments[0].start_index == 0
    assert segments[-1].end_s == pytest.approx(duration_s, abs=1e-3)
    assert segments[-1].end_index == frame_count - 1
    for a, b in itertools.pairwise(segments):
        assert a.end_s == pytest.approx(b.start_s) and a.end_index + 1 == b.start_index
    for s in segments:
        assert s.start_s < s.end_s and s.start_index <= s.end_index
    assert len(keyframes) <= max_keyframes
    assert [k.timestamp_s for k in keyframes] == sorted(k.timestamp_s for k in keyframes)
    assert len({k.segment for k in keyframes}) == len(keyframes)
    for k in keyframes:
        seg = segments[k.segment]
        assert seg.start_index <= k.index <= seg.end_index
        assert seg.start_s - 1e-3 <= k.timestamp_s <= seg.end_s + 1e-3
        assert 0.0 <= k.score <= 1.0


def hits(video: SceneVideo, keyframes: list[SummaryKeyframe], margin: float = 0.1) -> list[int]:
    """For each keyframe, the scene whose clean part holds it (-1: a transition or an edge)."""
    out = []
    for k in keyframes:
        t = k.timestamp_s
        found = [j for j, s in enumerate(video.scenes) if s.start_s + margin <= t <= s.end_s - margin]
        out.append(found[0] if found else -1)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SceneVideo]:
    d = tmp_path_factory.mktemp("scenes")
    make = lambda name, transition, kinds, seed: generate_video(  # noqa: E731
        d / f"{name}.mp4",
        seed,
        transition,
        num_scenes=len(kinds),
        kinds=kinds,
        size=SIZE,
        scene_s=(1.6, 2.0),
    )
    return {
        "hard": make("hard", "hard", ["stripes", "shapes", "pan"], 1),
        "crossfade": make("crossfade", "crossfade", ["checker", "blobs"], 2),
        "fade": make("fade", "fade-black", ["shapes", "gradient"], 3),
        "one": make("one", "hard", ["pan"], 4),
        "many": make("many", "mixed", ["gradient", "shapes", "stripes", "checker", "pan"], 5),
    }


def test_plan_is_dense_unique_sorted_and_capped(videos: dict[str, SceneVideo]) -> None:
    info = probe_video(videos["many"].path)
    planned = plan_summary_indices(info, 8.0, 10_000)
    assert planned == sorted(set(planned))
    assert abs(len(planned) - info.duration_s * 8) <= 1
    assert all(0 <= i < info.frame_count for i in planned)
    assert len(plan_summary_indices(info, 8.0, 10)) == 10


def test_three_hard_cut_scenes_give_three_segments_one_keyframe_each(model, videos) -> None:
    video = videos["hard"]
    segments, keyframes = run_summary(model, video.path)
    assert len(segments) == 3
    assert len(keyframes) == 3
    assert hits(video, keyframes) == [0, 1, 2]
    # Each boundary lands at the cut (within one sample period).
    for seg, scene in zip(segments[1:], video.scenes[1:], strict=True):
        assert seg.start_s == pytest.approx(scene.start_s, abs=0.15)


@pytest.mark.parametrize("name", ["crossfade", "fade"])
def test_gradual_transition_is_detected_and_keyframes_are_clean(model, videos, name: str) -> None:
    video = videos[name]
    segments, keyframes = run_summary(model, video.path)
    assert len(segments) == 2, segments
    # The boundary falls inside the transition, not somewhere in a scene.
    assert video.scenes[0].end_s - 0.15 <= segments[1].start_s <= video.scenes[1].start_s + 0.15
    assert hits(video, keyframes) == [0, 1]


def test_fade_keyframes_are_not_black(model, videos) -> None:
    video = videos["fade"]
    _, keyframes = run_summary(model, video.path)
    info = probe_video(video.path)
    frames = read_frames(video.path, info, [k.index for k in keyframes], (32, 32))
    assert (frames.reshape(len(frames), -1).mean(1) > 20).all()


def test_one_scene_gives_one_segment(model, videos) -> None:
    segments, keyframes = run_summary(model, videos["one"].path)
    assert len(segments) == 1
    assert len(keyframes) == 1


def test_max_keyframes_keeps_the_best_then_the_most_distinct_in_time_order(model, videos) -> None:
    video = videos["many"]
    segments, all_keys = run_summary(model, video.path, max_keyframes=8)
    assert len(segments) == 5
    assert sorted(set(hits(video, all_keys))) == [0, 1, 2, 3, 4]
    _, two = run_summary(model, video.path, max_keyframes=2)
    assert len(two) == 2
    best = max(all_keys, key=lambda k: k.score)
    assert best.index in [k.index for k in two]  # the best-scored keyframe stays
    assert {k.index for k in two} <= {k.index for k in all_keys}  # each still its segment's keyframe


def test_degenerate_inputs_still_cover_the_video() -> None:
    frames = np.zeros((1, 64, 64, 3), np.uint8)
    segments, keyframes = summarize(frames, [0], [0.0], None, None, 0.04, 1, 8)
    check_contract(segments, keyframes, 0.04, 1, 8)
    # Every segment gets a keyframe, even an all-black one (its brightest frame).
    assert len(segments) == 1 and [k.index for k in keyframes] == [0]


@pytest.mark.parametrize("size", [(96, 160), (160, 96)])
def test_thumbnail_is_a_jpeg_of_the_displayed_aspect(tmp_path: Path, size: tuple[int, int]) -> None:
    video = generate_video(
        tmp_path / "t.mp4", 9, "hard", num_scenes=1, kinds=["shapes"], size=size, scene_s=(1.0, 1.0)
    )
    info = probe_video(video.path)
    uri = jpeg_data_uri(video.path, info, info.frame_count // 2, max_side=128)
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix) :], validate=True)
    assert data[:2] == b"\xff\xd8"  # JPEG SOI
    with av.open(io.BytesIO(data), format="mjpeg") as c:
        frame = next(c.decode(video=0))
    assert max(frame.width, frame.height) <= 128
    assert frame.width / frame.height == pytest.approx(size[1] / size[0], rel=0.05)
    rgb = frame.to_ndarray(format="rgb24")
    assert rgb.std() > 5  # a picture, not a blank
