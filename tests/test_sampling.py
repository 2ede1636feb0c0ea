"""models.sampling: the plans, and training on a folder samples exactly as /classify serves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from models import frames as F
from models import jobs, sampling
from service.pipelines import Pipelines
from service.settings import Settings
from tests.conftest import REAL_MODEL, write_plain


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 30 s at 4 fps, every frame a different grey: longer than CLIP_WINDOW_S, so /classify takes
    # several clips, and a frame's value says which frame it is.
    return write_plain(tmp_path_factory.mktemp("sampling") / "long.mp4", 64, 64, frames=120, fps=4)


def test_training_on_a_folder_samples_the_clips_classify_serves(long_video: Path) -> None:
    trained = jobs.folder_clip((str(long_video), 16, 64, "stretch"))
    assert trained is not None and trained.shape == (3, 16, 64, 64, 3)  # 30 s / 10 s windows

    # The service's own /classify pipeline, decoding exactly (as training does).
    settings = Settings(model_dir=REAL_MODEL, decode_mode="exact", decode_loop_filter=True)
    classify = Pipelines.local(REAL_MODEL, settings).classify
    served = asyncio.run(classify.preprocess(long_video, segments=False, deadline=float("inf")))
    assert len(served.clips) == 3
    assert served.clips == sampling.plan_training_clips(F.probe_video(long_video), 16)
    # Pixel for pixel, after the model's normalization: the same input tensor.
    assert np.array_equal(classify.model.preprocessing.normalize(trained), served.x)


def test_plans_cover_what_they_promise(long_video: Path) -> None:
    info = F.probe_video(long_video)
    clips = sampling.plan_clips(info, 16, 10.0, 4)
    assert [len(c) for c in clips] == [16, 16, 16]
    assert all(c == sorted(c) for c in clips) and clips[0][-1] < clips[1][0] < clips[2][0]
    assert len(sampling.plan_clips(info, 16, 10.0, 2)) == 2  # MAX_CLIPS caps it
    windows = sampling.plan_windows(info.duration_s, 2.0, 16)
    assert windows[0][0] == 0.0 and windows[-1][1] == pytest.approx(info.duration_s)
    assert len(windows) <= 16 and all(b > a for a, b in windows)
    assert sampling.chunk_indices([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5, 5]]
    summary = sampling.plan_summary_indices(info, 2.0, 256)
    assert summary == sorted(set(summary)) and len(summary) == 60
    # The old homes still answer (other code imports them there).
    assert F.uniform_indices is sampling.uniform_indices
    from service import pipeline, summarize

    assert pipeline.plan_clips is sampling.plan_clips
    assert summarize.plan_summary_indices is sampling.plan_summary_indices
