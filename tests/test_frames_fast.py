"""models.frames' fast decode mode, and that exact mode (what training uses) is unchanged.

Every frame of the test clips shows its own index (tests.media), so a test can check
which frame a decoder really returned, after a codec, a seek and a resize.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from models import frames as F
from tests.media import read_index, write_indexed

# (codec, container format, extension): the codecs the service accepts most often.
CODECS = [
    ("libx264", "mp4", "mp4"),  # B-frames (x264's default), so NONREF really skips frames
    ("libx265", "matroska", "mkv"),
    ("libvpx", "webm", "webm"),
    ("libvpx-vp9", "webm", "webm"),
    ("libsvtav1", "mp4", "mp4"),
    ("mpeg4", "avi", "avi"),
    ("mjpeg", "avi", "avi"),  # every frame a keyframe
]
PIX_FMT = {"mjpeg": "yuvj420p"}  # FFmpeg's MJPEG encoder wants full-range YUV
N, GOP, T = 150, 40, 16


@pytest.fixture(autouse=True)
def _quiet() -> None:
    av.logging.set_level(av.logging.ERROR)


def _write(tmp_path, codec: str, fmt: str, ext: str):
    pix_fmt = PIX_FMT.get(codec, "yuv420p")
    return write_indexed(tmp_path / f"v.{ext}", codec, fmt, n=N, gop=GOP, pix_fmt=pix_fmt)


def _full_decode(path, info: F.VideoInfo, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Every frame, decoded front to back with no seeking: the reference for exactness."""
    pos_of = {p: i for i, p in enumerate(info.pts)}
    out = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out[pos_of[frame.pts]] = F.to_rgb(frame, size, info.rotation)
    return out


def test_tolerance_is_under_half_the_spacing() -> None:
    assert F.fast_tolerance([]) == []
    assert F.fast_tolerance([7]) == [0]
    assert F.fast_tolerance([0, 10, 30, 31]) == [4, 4, 0, 0]
    assert F.fast_tolerance([5, 17, 29]) == [5, 5, 5]


@pytest.mark.parametrize(("codec", "fmt", "ext"), CODECS, ids=[c[0] + "-" + c[2] for c in CODECS])
def test_fast_returns_frames_within_tolerance(tmp_path, codec, fmt, ext) -> None:
    path = _write(tmp_path, codec, fmt, ext)
    info = F.probe_video(path)
    uniform = F.uniform_indices(info, T)
    tolerance = F.fast_tolerance(uniform)
    clip = F.sample_frames(path, T, (64, 64), info=info, mode="fast")

    assert len(clip.indices) == T
    assert clip.indices == sorted(set(clip.indices)), "distinct and in time order"
    for want, got, tol in zip(uniform, clip.indices, tolerance, strict=True):
        assert abs(got - want) <= tol
        assert got == want or got in info.keyframes, "only a keyframe may stand in for a target"
    # The frames really are the ones reported, and bit-identical to exact mode's decode of them.
    assert [read_index(f) for f in clip.frames] == clip.indices
    exact = F.read_frames(path, info, clip.indices, (64, 64))
    np.testing.assert_array_equal(clip.frames, exact)
    assert clip.timestamps == [info.timestamp(i) for i in clip.indices]


def test_fast_takes_a_keyframe_near_a_target(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.mp4", "libx264", "mp4", n=N, gop=GOP)
    info = F.probe_video(path)
    uniform = F.uniform_indices(info, T)  # a step of about 9 frames: tolerance 4
    near_key = [u for u, tol in zip(uniform, F.fast_tolerance(uniform), strict=True)
                if any(0 < abs(k - u) <= tol for k in info.keyframes)]
    assert near_key, "the clip should have a keyframe near some target"
    clip = F.sample_frames(path, T, (64, 64), info=info, mode="fast")
    assert set(info.keyframes) & set(clip.indices) - set(uniform)


def test_fast_with_repeats_and_unsorted_indices(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.mp4", "libx264", "mp4", n=N, gop=GOP)
    info = F.probe_video(path)
    indices = [120, 3, 3, 77, 120]
    frames, got = F.read_frames_at(path, info, indices, (32, 32), mode="fast")
    assert [read_index(f) for f in frames] == got
    assert got[1] == got[2] and got[0] == got[4]
    tol = dict(zip([3, 77, 120], F.fast_tolerance([3, 77, 120]), strict=True))
    assert all(abs(g - i) <= tol[i] for g, i in zip(got, indices, strict=True))


def test_fast_from_memory(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.webm", "libvpx-vp9", "webm", n=60, gop=20)
    data = io.BytesIO(path.read_bytes())
    info = F.probe_video(data)
    clip = F.sample_frames(data, 8, (32, 32), info=info, mode="fast")
    assert [read_index(f) for f in clip.frames] == clip.indices


def test_unknown_mode_is_refused(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.mp4", "libx264", "mp4", n=20)
    info = F.probe_video(path)
    with pytest.raises(ValueError, match="mode"):
        F.read_frames(path, info, [0], (16, 16), mode="quick")  # type: ignore[arg-type]


@pytest.mark.parametrize(("codec", "fmt", "ext"), CODECS[:4], ids=[c[0] for c in CODECS[:4]])
def test_exact_mode_is_unchanged(tmp_path, codec, fmt, ext) -> None:
    """The default is exact, and exact equals a front-to-back full decode, bit for bit."""
    path = _write(tmp_path, codec, fmt, ext)
    info = F.probe_video(path)
    reference = _full_decode(path, info, (48, 48))
    uniform = F.uniform_indices(info, T)
    default = F.sample_frames(path, T, (48, 48), info=info)
    exact = F.sample_frames(path, T, (48, 48), info=info, mode="exact")
    assert default.indices == exact.indices == uniform
    np.testing.assert_array_equal(default.frames, exact.frames)
    np.testing.assert_array_equal(exact.frames, np.stack([reference[i] for i in uniform]))
    scattered = [140, 0, 41, 41, 99]
    np.testing.assert_array_equal(F.read_frames(path, info, scattered, (48, 48)),
                                  np.stack([reference[i] for i in scattered]))


def test_fast_on_av1_with_one_keyframe(tmp_path) -> None:
    # dav1d reads skip_frame once, when it opens, so switching it per packet as fast mode
    # does for FFmpeg's own decoders made it drop the frames asked for ("no frame of the
    # video could be decoded"; found by models.evaluate on a 97-frame AV1 clip).
    path = write_indexed(tmp_path / "v.mkv", "libsvtav1", "matroska", n=97, gop=300)
    info = F.probe_video(path)
    clip = F.sample_frames(path, T, (64, 64), info=info, mode="fast")
    assert [read_index(f) for f in clip.frames] == clip.indices
    uniform = F.uniform_indices(info, T)
    assert all(abs(a - b) <= t for a, b, t in zip(clip.indices, uniform, F.fast_tolerance(uniform), strict=True))
