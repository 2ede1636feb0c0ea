"""Preprocessing from model.json alone: resize policies in FFmpeg, value range, sampling policies."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from models import frames as F
from models import sampling
from models.manifest import SamplingPolicy
from models.preprocess import Preprocessing
from tests.conftest import write_plain


def _pattern_video(path: Path, width: int, height: int, frames: int = 6) -> Path:
    """Columns and rows of distinct colours, so a wrong crop, pad or scale shows."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 // (width - 1)), (yy * 255 // (height - 1)), ((xx // 8 + yy // 8) % 2) * 255], -1)
    img = img.astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv444p", threads=1)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _first_frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pattern_video(tmp_path_factory.mktemp("pre") / "wide.mp4", 160, 96)


def test_shorter_side_crop_is_the_centre_of_the_scaled_frame(wide: Path) -> None:
    info = F.probe_video(wide)
    got = F.read_frames(wide, info, [0], (64, 64), "shorter_side_crop", shorter=72)[0]
    # The reference: FFmpeg scales the whole frame so the shorter side is 72 (160x96 -> 120x72),
    # the centre 64x64 is kept: columns 28..92, rows 4..68.
    full = _first_frame(wide).to_ndarray(width=120, height=72, format="rgb24", interpolation="AREA")
    assert got.shape == (64, 64, 3)
    assert np.array_equal(got, full[4:68, 28:92])
    # Default S = min(H, W): the shorter side scaled to 64 exactly (107x64), no vertical crop.
    got = F.read_frames(wide, info, [0], (64, 64), "shorter_side_crop")[0]
    full = _first_frame(wide).to_ndarray(width=107, height=64, format="rgb24", interpolation="AREA")
    assert np.array_equal(got, full[:, 21:85])


def test_letterbox_fits_the_whole_frame_on_black(wide: Path) -> None:
    info = F.probe_video(wide)
    got = F.read_frames(wide, info, [0], (64, 64), "letterbox")[0]
    fitted = _first_frame(wide).to_ndarray(width=64, height=38, format="rgb24", interpolation="AREA")
    assert np.array_equal(got[13:51], fitted)
    assert got[:13].max() <= 16 and got[51:].max() <= 16  # black bars (video black may be 16 in RGB: 0)


def test_stretch_is_unchanged(wide: Path) -> None:
    info = F.probe_video(wide)
    got = F.read_frames(wide, info, [0], (64, 48))[0]
    ref = _first_frame(wide).to_ndarray(width=48, height=64, format="rgb24", interpolation="AREA")
    assert np.array_equal(got, ref)


def test_rotated_video_is_cropped_as_displayed(tmp_path: Path) -> None:
    path = _pattern_video(tmp_path / "rot.mp4", 160, 96, frames=2)
    info = F.probe_video(path)
    frame = _first_frame(path)
    # Not rotated: the same as to_rgb with rotation 90 applied by hand on a turned frame.
    turned = F.to_rgb(frame, (64, 48), rotation=90, policy="shorter_side_crop")
    plain = F.read_frames(path, info, [0], (48, 64), "shorter_side_crop")[0]
    assert turned.shape == (64, 48, 3)
    assert np.array_equal(turned, np.rot90(plain, k=1))


def test_rescale_and_mean_std_come_from_the_manifest() -> None:
    prep = Preprocessing(num_frames=1, size=(2, 2), resize="stretch", resize_shorter=None, rescale=1 / 127.5,
                         mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0), sampling=SamplingPolicy())
    frames = np.array([[[[0, 255, 128], [255, 0, 0]], [[0, 0, 0], [255, 255, 255]]]], np.uint8)
    x = prep.normalize(frames)
    assert x.shape == (1, 3, 2, 2)
    assert x.min() == pytest.approx(-1.0) and x.max() == pytest.approx(1.0)
    assert x[0, 2, 0, 0] == pytest.approx(128 / 127.5 - 1, abs=1e-6)


def test_sampling_policies(tmp_path: Path) -> None:
    info = F.probe_video(write_plain(tmp_path / "v.mp4", 32, 32, frames=50, fps=25))  # 2 s
    uniform = sampling.clip_indices(info, 4, SamplingPolicy())
    assert uniform == [6, 18, 31, 43]
    stride = sampling.clip_indices(info, 4, SamplingPolicy(policy="stride", stride=3))
    assert stride == [21, 24, 27, 30]  # around frame 25 (1.0 s): 25 - 9 // 2 = 21
    fps = sampling.clip_indices(info, 5, SamplingPolicy(policy="fps", fps=5.0))
    assert fps == [15, 20, 25, 30, 35]  # 0.2 s apart around 1.0 s
    # Longer than the video: clamped to its first and last frames.
    assert sampling.clip_indices(info, 4, SamplingPolicy(policy="stride", stride=30)) == [0, 10, 40, 49]
    # Inside a window: centred on the window.
    assert sampling.clip_indices(info, 2, SamplingPolicy(policy="stride", stride=2), 0.0, 1.0) == [11, 13]
