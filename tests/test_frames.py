"""models.frames on real files written with PyAV in several codecs and containers."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from av.codec.hwaccel import HWAccel

from models import frames as F
from tests.media import index_frame, read_index, write_indexed

CODECS = [
    ("libx264", "mp4", "mp4", "yuv420p"),
    ("libx265", "matroska", "mkv", "yuv420p"),
    ("libvpx", "webm", "webm", "yuv420p"),
    ("libvpx-vp9", "webm", "webm", "yuv420p"),
    ("libsvtav1", "mp4", "mp4", "yuv420p"),
    ("mpeg4", "avi", "avi", "yuv420p"),
    ("mjpeg", "avi", "avi", "yuvj420p"),
    ("libx264", "mov", "mov", "yuv444p"),  # 4:4:4
    ("libx264", "mp4", "mp4", "yuv420p10le"),  # 10-bit
    ("libx264", "matroska", "mkv", "gray"),  # grayscale
]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    av.logging.set_level(av.logging.ERROR)


@pytest.mark.parametrize(("codec", "fmt", "ext", "pix_fmt"), CODECS, ids=lambda v: str(v))
def test_uniform_sampling_returns_the_right_frames(tmp_path, codec, fmt, ext, pix_fmt) -> None:
    path = write_indexed(tmp_path / f"v.{ext}", codec, fmt, n=75, pix_fmt=pix_fmt, gop=10)
    info = F.probe_video(path)
    assert info.frame_count == 75
    assert info.fps == pytest.approx(25, rel=1e-3)
    assert info.duration_s == pytest.approx(3.0, rel=1e-3)
    assert (info.width, info.height) == (160, 96)
    clip = F.sample_frames(path, 16, (64, 64), info=info)
    # The middle of 16 equal parts of 75 frames, by presentation time.
    expected = [int((i + 0.5) * 75 / 16) for i in range(16)]
    assert clip.indices == expected
    assert clip.timestamps == pytest.approx([i / 25 for i in expected], abs=1e-3)
    assert [read_index(f) for f in clip.frames] == expected
    # Whole-video coverage: the samples span the video, not its first T frames.
    assert clip.indices[0] < 75 / 16 and clip.indices[-1] > 75 * 15 / 16 - 1


def test_webm_without_frame_count_is_indexed(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.webm", "libvpx-vp9", "webm", n=40)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # the container does not say
    info = F.probe_video(path)
    assert info.frame_count == 40


def test_variable_frame_rate_uses_real_timestamps(tmp_path) -> None:
    rng = np.random.default_rng(0)
    steps = rng.integers(10, 90, size=50)  # 10..90 ms between frames
    pts = np.concatenate([[0], np.cumsum(steps[:-1])]).tolist()
    path = write_indexed(tmp_path / "vfr.mkv", "libx264", "matroska", n=50, pts_list=pts,
                         time_base=Fraction(1, 1000))
    info = F.probe_video(path)
    assert info.frame_count == 50
    clip = F.sample_frames(path, 8, (64, 64), info=info)
    span = pts[-1] / 1000 + 1 / info.fps
    assert info.duration_s == pytest.approx(span, rel=1e-6)
    for k, (index, t) in enumerate(zip(clip.indices, clip.timestamps)):
        target = (k + 0.5) * span / 8
        # The frame on screen at the target time: the last one shown by then.
        assert pts[index] / 1000 <= target + 1e-9
        assert index == 49 or pts[index + 1] / 1000 > target
        assert t == pytest.approx(pts[index] / 1000, abs=1e-6)
    assert [read_index(f) for f in clip.frames] == clip.indices


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_variable_frame_rate_mp4_where_seeks_land_early(tmp_path, mode) -> None:
    # x264 in MP4 with variable timing: FFmpeg's seek to a keyframe's own timestamp often
    # lands on the keyframe before it (or on frame 0). The sampler used to seek to the same
    # keyframe again and again, for ever (found by models.evaluate on a 9 s VFR clip).
    rng = np.random.default_rng(7)
    pts = np.concatenate([[0], np.cumsum(rng.integers(1000, 4000, size=199))]).tolist()
    path = write_indexed(tmp_path / "vfr.mp4", "libx264", "mp4", n=200, pts_list=pts,
                         time_base=Fraction(1, 90000), gop=60)
    info = F.probe_video(path)
    assert len(info.keyframes) >= 3
    clip = F.sample_frames(path, 16, (64, 64), info=info, mode=mode)
    assert [read_index(f) for f in clip.frames] == clip.indices
    uniform = F.uniform_indices(info, 16)
    tolerance = F.fast_tolerance(uniform) if mode == "fast" else [0] * 16
    assert all(abs(a - b) <= t for a, b, t in zip(clip.indices, uniform, tolerance, strict=True))


def test_rotation_metadata_is_applied(tmp_path) -> None:
    path = write_indexed(tmp_path / "rot.mp4", n=10, width=160, height=96, rotation=90)
    info = F.probe_video(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (96, 160)  # displayed size
    frame = F.read_frames(path, info, [5], (80, 48))[0].astype(np.float64)
    assert frame.shape == (80, 48, 3)

    def half(img: np.ndarray) -> np.ndarray:  # 2x2 block means: the area scale to (80, 48)
        return img.reshape(80, 2, 48, 2, 3).mean(axis=(1, 3))

    # The whole picture, as displayed: frame 5 (bars for bits 0 and 2, an asymmetric
    # pattern) turned 90 degrees counter-clockwise, and not turned the other way or flipped.
    picture = index_frame(5, 160, 96)
    right = np.abs(frame - half(np.rot90(picture, k=1))).mean()
    assert right < 8, right
    for wrong in (np.rot90(picture, k=3), np.rot90(picture, k=1)[::-1], np.rot90(picture, k=1)[:, ::-1]):
        assert np.abs(frame - half(wrong)).mean() > 4 * right + 20


def test_letterbox_keeps_the_aspect_ratio(tmp_path) -> None:
    path = write_indexed(tmp_path / "wide.mp4", n=5, width=192, height=96)
    info = F.probe_video(path)
    frame = F.read_frames(path, info, [3], (64, 64), policy="letterbox")[0]
    assert frame[:15].max() == 0 and frame[-15:].max() == 0  # padding above and below
    assert frame[20:44].max() > 0


def test_one_frame_video_and_repeated_indices(tmp_path) -> None:
    path = write_indexed(tmp_path / "one.mp4", n=1)
    info = F.probe_video(path)
    assert info.frame_count == 1
    clip = F.sample_frames(path, 16, (32, 32), info=info)
    assert clip.indices == [0] * 16
    assert clip.frames.shape == (16, 32, 32, 3)


def test_windows_sample_inside_the_window(tmp_path) -> None:
    path = write_indexed(tmp_path / "w.mp4", n=100)
    info = F.probe_video(path)
    indices = F.uniform_indices(info, 4, start_s=2.0, end_s=4.0)
    assert all(50 <= i < 100 for i in indices)
    assert [read_index(f) for f in F.read_frames(path, info, indices, (64, 64))] == indices


def test_audio_track_is_ignored(tmp_path) -> None:
    path = write_indexed(tmp_path / "a.mp4", n=30, audio=True)
    assert F.probe_video(path).frame_count == 30


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100, bytes(range(256)) * 64])
def test_garbage_raises_the_typed_error(tmp_path, content) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(content)
    with pytest.raises(F.VideoDecodeError):
        F.probe_video(path)


def test_truncated_video_raises_the_typed_error(tmp_path) -> None:
    path = write_indexed(tmp_path / "full.mp4", n=50)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(F.VideoDecodeError):
        F.probe_video(cut)


def test_still_image_and_audio_only_raise_the_typed_error(tmp_path) -> None:
    image = tmp_path / "still.png"
    av.VideoFrame.from_ndarray(index_frame(3, 64, 64), format="rgb24").save(str(image))
    with pytest.raises(F.VideoDecodeError, match="image"):
        F.probe_video(image)
    sound = tmp_path / "tone.m4a"
    out = av.open(str(sound), "w", format="mp4")
    stream = out.add_stream("aac", rate=44100)
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    chunk.sample_rate = 44100
    for packet in [*stream.encode(chunk), *stream.encode(None)]:
        out.mux(packet)
    out.close()
    with pytest.raises(F.VideoDecodeError, match="no video stream"):
        F.probe_video(sound)


def test_normalize_layout_and_values() -> None:
    frames = np.full((2, 4, 5, 3), 255, np.uint8)
    x = F.normalize(frames, [0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    assert x.shape == (2, 3, 4, 5) and x.dtype == np.float32
    assert x[0, :, 0, 0] == pytest.approx([2.0, 1.0, 0.5])


def test_hardware_decoder_falls_back_to_software(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.mp4", n=40, gop=10)
    info = F.probe_video(path)
    indices = F.uniform_indices(info, 8)
    software = F.read_frames(path, info, indices, (64, 64))
    # Asked for NVDEC directly (not through hardware_decoder): where there is no GPU, the
    # device cannot be created and the same frames must come back from the software decoder.
    forced = HWAccel("cuda", allow_software_fallback=True)
    frames = F.read_frames(path, info, indices, (64, 64), hwaccel=forced)
    assert [read_index(f) for f in frames] == indices
    accel = F.hardware_decoder("cuda")
    if accel is None:  # this machine has no usable CUDA device
        np.testing.assert_array_equal(frames, software)
    else:  # NVDEC's output may round differently from the software decoder's
        assert [read_index(f) for f in F.read_frames(path, info, indices, (64, 64), hwaccel=accel)] == indices


def test_no_loop_filter_returns_the_same_frames(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.mp4", n=60, gop=30)
    info = F.probe_video(path)
    indices = F.uniform_indices(info, 8)
    frames = F.read_frames(path, info, indices, (64, 64), mode="fast", loop_filter=False)
    # The pictures may drift by a few levels without deblocking, not change frames.
    assert [read_index(f) for f in frames] == F.read_frames_at(path, info, indices, (64, 64), mode="fast")[1]


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_gop_split_decodes_the_same_frames(tmp_path, mode) -> None:
    path = write_indexed(tmp_path / "v.mp4", n=200, gop=25)
    info = F.probe_video(path)
    indices = [i for k in range(4) for i in F.uniform_indices(info, 16, k * 2.0, (k + 1) * 2.0)]
    groups = F.split_by_gop(info, sorted(set(indices)), 2)
    assert len(groups) == 2 and sorted(groups[0] + groups[1]) == sorted(set(indices))
    # Whole GOPs per decoder: no GOP is shared.
    gop = {i: max(k for k in info.keyframes if k <= i) for i in indices}
    assert not {gop[i] for i in groups[0]} & {gop[i] for i in groups[1]}
    one, at_one = F.read_frames_at(path, info, indices, (64, 64), threads=2, mode=mode, workers=1)
    two, at_two = F.read_frames_at(path, info, indices, (64, 64), threads=2, mode=mode, workers=2)
    assert at_one == at_two
    np.testing.assert_array_equal(one, two)
    assert [read_index(f) for f in two] == at_two


def test_gop_split_keeps_one_decoder_when_one_gop_holds_the_work(tmp_path) -> None:
    path = write_indexed(tmp_path / "v.mp4", n=120, gop=50)
    info = F.probe_video(path)
    second = info.keyframes[1]
    # Most of the walk is in the first GOP; the other decoder would get 2 frames to decode.
    fetch = list(range(2, second, 4)) + [second, second + 1]
    assert F.split_by_gop(info, fetch, 2) == [fetch]
