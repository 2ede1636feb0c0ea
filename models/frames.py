"""Probe, sample and resize video frames: the one implementation shared by training and serving.

Why an index first: demuxing (reading packets without decoding them) is cheap, and it
gives the exact presentation timestamp of every frame and where the keyframes are. With
that we know each sampled frame's true index and timestamp (also for variable frame rate
and for containers such as WebM that report no frame count), and we can plan the decode:
seek to the keyframe before a target when that skips work, and stop after the last one.
Resizing happens in FFmpeg's scaler (area filter: a thin object survives a 20x
downscale); a centre crop or letterbox pad is FFmpeg's crop or pad filter. The default
policy (stretch) keeps the whole frame visible: no centre crop can lose a moving object.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Literal

import av
import av.filter
import numpy as np
from av.codec.hwaccel import HWAccel

from models.cancel import CancelToken, DecodeCancelled
from models.cancel import check as check_cancel
from models.sampling import uniform_indices

ResizePolicy = Literal["stretch", "shorter_side_crop", "letterbox"]
# "exact": every returned frame is the one asked for (training depends on it).
# "fast": a frame may be replaced by a nearby one that is cheaper to reach; see _fast_plan.
DecodeMode = Literal["exact", "fast"]


@dataclass(frozen=True)
class DecodeOptions:
    """How one decode runs (not what it returns, except that fast mode may move frames).

    threads: FFmpeg frame threads (0 = FFmpeg's choice); mode: exact or fast (see
    fast_tolerance); loop_filter: False skips H.264/HEVC deblocking; hwaccel: a hardware
    decoder from hardware_decoder; workers: decoders the GOPs may be split over.
    """

    threads: int = 0
    mode: DecodeMode = "exact"
    loop_filter: bool = True
    hwaccel: HWAccel | None = None
    workers: int = 1


class VideoDecodeError(ValueError):
    """The input is not a decodable video (or has no video stream, or no frames)."""


class VideoTooLarge(Exception):
    """The video is beyond a HeaderLimits bound (decided before any frame is decoded)."""


@dataclass(frozen=True)
class HeaderLimits:
    """Bounds probe_video checks from the container and codec headers, before a decoder
    makes a frame: a few KB of HEVC can claim 16384x8640 (a 212 MB frame), and a few MB
    can hold hundreds of streams, each with its own parser and decoder state."""

    max_pixels: int | None = None  # coded width x height
    max_streams: int | None = None
    max_duration_s: float | None = None  # demuxing stops once the timestamps pass it
    max_metadata: int | None = None  # tags of the container and its streams, together

    def decoder_options(self) -> dict[str, str]:
        # FFmpeg's own backstop for any decoder opened while probing (find_stream_info's
        # included): it refuses larger pictures before allocating them. A margin, since it
        # counts coded (macroblock-aligned) sizes, e.g. 1920x1088 for 1080p.
        return {"max_pixels": str(int(self.max_pixels * 1.25) + 65536)} if self.max_pixels else {}


@dataclass(frozen=True)
class VideoInfo:
    """What a client sees of a video, plus the packet index that plans decoding."""

    duration_s: float
    fps: float
    width: int  # displayed, after rotation metadata
    height: int
    frame_count: int
    codec: str
    container: str
    rotation: int  # degrees counter-clockwise the decoded picture is turned for display
    time_base: Fraction = field(repr=False)
    pts: tuple[int, ...] = field(repr=False)  # presentation order, one per frame
    keyframes: tuple[int, ...] = field(repr=False)  # frame indices (presentation order)

    def timestamp(self, index: int) -> float:
        """Seconds from the first frame to frame `index`."""
        return float((self.pts[index] - self.pts[0]) * self.time_base)

    def index_at(self, t: float) -> int:
        """The frame on screen at `t` seconds from the start (the last one shown by then)."""
        target = self.pts[0] + t / self.time_base
        return max(0, min(len(self.pts) - 1, bisect.bisect_right(self.pts, target) - 1))


Source = str | Path | BinaryIO
# Image formats that may hold an animation: a video when they have more than one frame.
ANIMATED_IMAGE_FORMATS = ("gif", "apng")


def _open(
    path: Source, hwaccel: HWAccel | None = None, limits: HeaderLimits | None = None
) -> av.container.InputContainer:
    options: dict[str, str] = {}
    container_options: dict[str, str] = {}
    if limits is not None:
        options = limits.decoder_options()
        if limits.max_streams is not None:
            # One more than allowed, so that "over the limit" can be told apart from "at it":
            # Matroska stops creating streams there, MP4 fails with ENOMEM.
            container_options["max_streams"] = str(limits.max_streams + 1)
    try:
        source = str(path) if isinstance(path, (str, Path)) else path
        if not isinstance(source, str):
            source.seek(0)
        container = av.open(source, mode="r", metadata_errors="ignore", hwaccel=hwaccel, options=options,
                            container_options=container_options)
    except av.error.MemoryError as exc:
        if limits is not None and limits.max_streams is not None:
            raise VideoTooLarge(
                f"the file has more than {limits.max_streams} streams (or headers that ask for more memory "
                "than a video needs); send a file with one video stream"
            ) from exc
        raise VideoDecodeError(f"not a readable video file ({_reason(exc)})") from exc
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise VideoDecodeError(f"not a readable video file ({_reason(exc)})") from exc
    if limits is not None and limits.max_streams is not None and len(container.streams) > limits.max_streams:
        container.close()
        raise VideoTooLarge(
            f"the file has more than {limits.max_streams} streams, above the limit; send a file with "
            "one video stream (e.g. ffmpeg -i in.mkv -map 0:v:0 -c copy out.mkv)"
        )
    return container


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[-1].strip() or type(exc).__name__


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    # A photo is not a video, even though FFmpeg presents it as a one-frame video stream. Animated
    # GIF and APNG are videos when they hold more than one frame (probe_video counts them).
    fmt = container.format.name
    if fmt == "webp_pipe":
        raise VideoDecodeError("WebP (still or animated) is not decoded as video here; upload MP4, WebM, GIF or APNG")
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise VideoDecodeError(f"this is a still image ({fmt}), not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(f"the file has no video stream (streams: {', '.join(kinds)})")
    return container.streams.video[0]


def _check_header(stream: av.video.stream.VideoStream, limits: HeaderLimits | None) -> None:
    if limits is None or limits.max_pixels is None:
        return
    ctx = stream.codec_context
    pixels = ctx.width * ctx.height
    if pixels > limits.max_pixels:
        raise VideoTooLarge(
            f"the video is {ctx.width}x{ctx.height} = {pixels} pixels, above the limit of {limits.max_pixels}; "
            "downscale it"
        )


def probe_video(path: Source, *, limits: HeaderLimits | None = None, cancel: CancelToken | None = None) -> VideoInfo:
    """Index a video's frames by demuxing it, and decode its first frame to prove it decodes.

    Raises VideoDecodeError for anything that is not a decodable video with frames, and
    VideoTooLarge when the headers (streams, coded size) or the timestamps pass `limits`,
    before the first frame is decoded. `cancel` is checked while demuxing.
    """
    with _open(path, limits=limits) as container:
        if limits is not None and limits.max_metadata is not None:
            tags = len(container.metadata) + sum(len(s.metadata) for s in container.streams)
            if tags > limits.max_metadata:
                raise VideoTooLarge(
                    f"the file carries {tags} metadata tags, above the limit of {limits.max_metadata}; "
                    "strip them (e.g. ffmpeg -i in.mkv -map_metadata -1 -c copy out.mkv)"
                )
        stream = _video_stream(container)
        _check_header(stream, limits)
        if limits is not None:
            stream.codec_context.options = limits.decoder_options()
        max_span = None
        if limits is not None and limits.max_duration_s is not None and stream.time_base:
            # A frame period of slack: the limit is on the duration, the span is one frame shorter.
            max_span = limits.max_duration_s / float(stream.time_base)
        lo = hi = None
        pts: list[int] = []
        key_pts: list[int] = []
        first = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if len(pts) % 256 == 0:
                    check_cancel(cancel)
                    if max_span is not None and lo is not None and hi - lo > max_span:  # type: ignore[operator]
                        raise VideoTooLarge(
                            f"the video lasts more than {limits.max_duration_s:g} s, the limit; "  # type: ignore[union-attr]
                            "cut it into shorter parts"
                        )
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    # No timestamps at all (raw elementary streams): number frames instead.
                    stamp = len(pts)
                pts.append(stamp)
                if packet.pts is not None:
                    lo = packet.pts if lo is None else min(lo, packet.pts)
                    hi = packet.pts if hi is None else max(hi, packet.pts)
                if packet.is_keyframe:
                    key_pts.append(stamp)
                if first is None:
                    for frame in stream.decode(packet):
                        first = frame
                        break
        except av.error.FFmpegError as exc:
            if not pts:
                raise VideoDecodeError(f"the video stream cannot be read ({_reason(exc)})") from exc
            # A damaged tail: keep the frames before it.
        if first is None:
            try:
                for frame in stream.decode(None):
                    first = frame
                    break
            except av.error.FFmpegError:
                pass
        if not pts:
            raise VideoDecodeError("the video stream has no frames")
        if len(pts) == 1 and container.format.name in ANIMATED_IMAGE_FORMATS:
            raise VideoDecodeError(f"this is a still image (a one-frame {container.format.name}), not a video")
        if first is None:
            raise VideoDecodeError("no frame of the video stream could be decoded")

        time_base = stream.time_base or Fraction(1, 1)
        if all(p == i for i, p in enumerate(pts)) and stream.time_base is None:
            time_base = Fraction(1, 25)
        order = sorted(set(pts))
        keyset = set(key_pts) or {order[0]}
        keyframes = tuple(i for i, p in enumerate(order) if p in keyset)
        if not keyframes or keyframes[0] != 0:
            keyframes = (0, *keyframes)
        n = len(order)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if n > 1:
            span = float((order[-1] - order[0]) * time_base)
            fps = (n - 1) / span if span > 0 else float(rate or 25)
        else:
            fps = float(rate) if rate else 25.0
        duration = n / fps  # the last frame stays on screen for one frame period
        rotation = round((first.rotation or 0) / 90.0) * 90 % 360
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            duration_s=duration,
            fps=fps,
            width=width,
            height=height,
            frame_count=n,
            codec=stream.codec_context.name,
            container=container.format.name,
            rotation=rotation,
            time_base=time_base,
            pts=tuple(order),
            keyframes=keyframes,
        )


def _fit(src_w: int, src_h: int, out_w: int, out_h: int, policy: ResizePolicy,
         shorter: int | None) -> tuple[int, int]:
    """The size (w, h) the whole displayed picture is scaled to before a crop or pad to out_w x out_h."""
    if policy == "letterbox":
        scale = min(out_w / src_w, out_h / src_h)
    elif policy == "shorter_side_crop":
        # Shorter side to S, but never below what the centre crop needs (S < H or W).
        scale = max((shorter or min(out_w, out_h)) / min(src_w, src_h), out_w / src_w, out_h / src_h)
    else:
        return out_w, out_h
    fit_w, fit_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    if policy == "letterbox":
        return min(fit_w, out_w), min(fit_h, out_h)
    return max(fit_w, out_w), max(fit_h, out_h)


class _Framer:
    """FFmpeg's crop (shorter_side_crop) or pad (letterbox) filter on an already scaled RGB frame.

    One small filter graph per scaled size, kept for the whole decode: building a graph costs
    more than running it, and every frame of one video has the same size.
    """

    def __init__(self) -> None:
        self._graphs: dict[tuple[int, int, str], tuple[av.filter.Graph, int, int]] = {}

    def apply(self, frame: av.VideoFrame, out_w: int, out_h: int, policy: ResizePolicy) -> av.VideoFrame:
        key = (frame.width, frame.height, f"{policy}:{out_w}x{out_h}")
        if key not in self._graphs:
            graph = av.filter.Graph()
            graph.threads = 1  # a 224x224 crop or pad is cheap; slice threads only add switching
            src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                   time_base=Fraction(1, 1000))
            if policy == "letterbox":
                x, y = (out_w - frame.width) // 2, (out_h - frame.height) // 2
                node = graph.add("pad", f"{out_w}:{out_h}:{x}:{y}:black")
            else:
                x, y = (frame.width - out_w) // 2, (frame.height - out_h) // 2
                node = graph.add("crop", f"{out_w}:{out_h}:{x}:{y}:exact=1")
            sink = graph.add("buffersink")
            src.link_to(node)
            node.link_to(sink)
            graph.configure()
            self._graphs[key] = (graph, out_w, out_h)
        graph = self._graphs[key][0]
        frame.pts = None
        graph.vpush(frame)
        return graph.vpull()


def to_rgb(
    frame: av.VideoFrame,
    size: tuple[int, int],
    rotation: int = 0,
    policy: ResizePolicy = "stretch",
    shorter: int | None = None,
    framer: _Framer | None = None,
) -> np.ndarray:
    """One decoded frame as uint8 RGB [H, W, 3] of `size` = (H, W), as displayed.

    Every resize, crop and pad happens in FFmpeg (the scaler, then the crop or pad filter),
    before rotation, so the coded picture is scaled to the rotated target shape.
    stretch: the whole picture scaled to HxW. shorter_side_crop: the shorter side scaled to
    `shorter` (default min(H, W)), then the centre HxW (as ImageNet and Hugging Face
    processors do). letterbox: fitted inside HxW, on black.
    """
    out_h, out_w = size
    turned = rotation in (90, 270)
    src_w, src_h = (frame.height, frame.width) if turned else (frame.width, frame.height)
    fit_w, fit_h = _fit(src_w, src_h, out_w, out_h, policy, shorter)
    coded_w, coded_h = (fit_h, fit_w) if turned else (fit_w, fit_h)
    # threads=1: swscale's own slice threads can deadlock when the scaler is freed (seen
    # with FFmpeg 8 under load), and a 64x64 output is cheap on one thread.
    if (fit_w, fit_h) == (out_w, out_h):
        rgb = frame.to_ndarray(width=coded_w, height=coded_h, format="rgb24", interpolation="AREA", threads=1)
    else:
        scaled = frame.reformat(width=coded_w, height=coded_h, format="rgb24", interpolation="AREA", threads=1)
        box_w, box_h = (out_h, out_w) if turned else (out_w, out_h)
        rgb = (framer or _Framer()).apply(scaled, box_w, box_h, policy).to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    return np.ascontiguousarray(rgb)


def _decode_wanted(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    wanted: Sequence[int],
    cancel: CancelToken | None = None,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (frame index, frame) for the sorted unique indices in `wanted`.

    Seeks to the keyframe before the next target whenever that keyframe lies beyond
    what has been decoded so far (everything between would be wasted work), and stops
    after the last target.
    """
    targets = sorted(set(wanted))
    pos_of = {p: i for i, p in enumerate(info.pts)}
    keyframes = info.keyframes
    position = -1  # index of the last frame decoded
    t = 0
    sought = -1  # the keyframe of the last seek
    while t < len(targets):
        target = targets[t]
        key = keyframes[bisect.bisect_right(keyframes, target) - 1]
        if key > position + 1 and key != sought:
            # Some demuxers land before the keyframe asked for (MP4 with B-frames and variable
            # frame rate landed on frame 0): never seek to the same keyframe twice, walk on.
            sought = key
            container.seek(info.pts[key], stream=stream, backward=True, any_frame=False)
        elif position >= target:
            # Overshot because the frame was missing: give up on it.
            t += 1
            continue
        found = False
        cost = _packet_cost(stream)
        for packet in container.demux(stream):
            if cancel is not None:
                cancel.charge(cost)
            try:
                frames = stream.decode(packet)
            except av.error.FFmpegError:
                continue  # a damaged packet: its frame is lost, keep going
            for frame in frames:
                stamp = frame.pts
                index = pos_of.get(stamp) if stamp is not None else None
                if index is None:
                    index = position + 1 if stamp is None else info.index_at(
                        float((stamp - info.pts[0]) * info.time_base)
                    )
                position = index
                while t < len(targets) and targets[t] < index:
                    t += 1  # missed (not decodable), the caller fills it in
                if t < len(targets) and targets[t] == index:
                    yield index, frame
                    t += 1
                    found = True
                if t >= len(targets):
                    return
                next_key = keyframes[bisect.bisect_right(keyframes, targets[t]) - 1]
                if next_key > position + 1 and next_key != sought:
                    break  # cheaper to seek to the next target's keyframe
            else:
                continue
            break
        else:
            return  # end of stream
        if not found and t < len(targets) and targets[t] <= position:
            t += 1


def fast_tolerance(targets: Sequence[int]) -> list[int]:
    """How far (in frames) fast mode may move each of the sorted unique `targets`.

    The tolerance of a target is strictly less than half the gap to its nearest
    neighbouring target: (gap - 1) // 2. Each substitute therefore stays closer to its own
    target than to any other, so the sampled frames stay distinct and in time order, and a
    uniform sample stays uniform to within half a sampling step. A lone target has no
    spacing to lean on and gets tolerance 0 (it still profits from skipped frames).
    """
    if len(targets) < 2:
        return [0] * len(targets)
    gaps = [b - a for a, b in itertools.pairwise(targets)]
    # The nearest neighbour's gap: an end target has a neighbour on one side only.
    near = [min(gaps[max(0, i - 1) : i + 1]) for i in range(len(targets))]
    return [max(0, (g - 1) // 2) for g in near]


def _fast_plan(info: VideoInfo, targets: Sequence[int]) -> dict[int, int]:
    """Map each sorted unique target to the frame fast mode decodes for it.

    A keyframe within the target's tolerance (before or after it) is taken instead of the
    target: it decodes on its own, right after a seek, while reaching the target itself
    means decoding the whole chain of frames from the keyframe before it.
    """
    keyframes = info.keyframes
    plan = {}
    for target, tol in zip(targets, fast_tolerance(targets), strict=True):
        k = bisect.bisect_right(keyframes, target) - 1
        candidates = [keyframes[j] for j in (k, k + 1) if 0 <= j < len(keyframes)]
        near = min(candidates, key=lambda key: (abs(key - target), key))
        plan[target] = near if abs(near - target) <= tol else target
    return plan


def _decode_fast(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    fetch: Sequence[int],
    cancel: CancelToken | None = None,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (frame index, frame) for the sorted unique indices in `fetch`, doing less work.

    The walk of _decode_wanted (seek to the keyframe before the next frame when it lies
    beyond what was decoded, stop after the last one), plus two savings:

    - packets of frames nobody asked for are decoded with skip_frame=NONREF (by FFmpeg's
      own decoders; not by wrapped libraries such as libdav1d), so frames no
      other frame refers to (most B-frames) are never reconstructed. Every reference frame
      and every frame asked for decodes as in a full decode, so the frames returned are
      bit-identical to exact mode's for the same indices.
    - before a seek (and after the last frame) the decoder is drained instead of fed:
      with frame threads a frame only comes out after `thread_count` further packets, and
      decoding those only to push the wanted frame through is wasted work.
    """
    ctx = stream.codec_context
    pos_of = {p: i for i, p in enumerate(info.pts)}
    keyframes = info.keyframes
    want_pts = {info.pts[i] for i in fetch}
    # FFmpeg's own decoders read skip_frame for every frame; wrapped libraries (libdav1d)
    # read it once when they open and would then drop the frames asked for too.
    skip = "DEFAULT" if ctx.codec.name.startswith("lib") else "NONREF"

    def key_of(index: int) -> int:
        return keyframes[bisect.bisect_right(keyframes, index) - 1]

    # fetch[i] is a drain point when the frame after it is reached by a seek (or there is none).
    drain_at = [i + 1 >= len(fetch) or key_of(fetch[i + 1]) > fetch[i] + 1 for i in range(len(fetch))]

    def frames_of(packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return list(stream.decode(packet))
        except av.error.FFmpegError:
            return []  # a damaged packet (or nothing left to drain): its frame is lost

    position = -1  # index of the last frame decoded
    t = 0
    sought = -1  # the keyframe of the last seek
    while t < len(fetch):
        target = fetch[t]
        if key_of(target) > position + 1:
            sought = key_of(target)
            container.seek(info.pts[sought], stream=stream, backward=True, any_frame=False)
        elif position >= target:
            t += 1  # overshot because the frame was missing: give up on it
            continue
        sent: set[int] = set()  # wanted pts sent to the decoder since this segment began
        drained = False
        cost = _packet_cost(stream)
        for packet in container.demux(stream):
            if cancel is not None:
                cancel.charge(cost)
            wanted = packet.pts is None or packet.pts in want_pts
            # Set per packet: frame threads copy the setting when a packet is submitted.
            ctx.skip_frame = "DEFAULT" if wanted else skip
            frames = frames_of(packet)
            if packet.pts is not None and wanted:
                sent.add(packet.pts)
                d = next(i for i in range(t, len(fetch)) if drain_at[i])
                # Drain only once every frame up to the drain point is inside the decoder:
                # with B-frames a frame shown earlier can be sent later.
                if all(info.pts[fetch[i]] in sent for i in range(t, d + 1)):
                    frames += frames_of(None)
                    drained = True
            seek_next = False
            for frame in frames:
                stamp = frame.pts
                index = pos_of.get(stamp) if stamp is not None else None
                if index is None:
                    index = position + 1 if stamp is None else info.index_at(
                        float((stamp - info.pts[0]) * info.time_base)
                    )
                position = index
                while t < len(fetch) and fetch[t] < index:
                    t += 1  # missed (not decodable), the caller fills it in
                if t < len(fetch) and fetch[t] == index:
                    yield index, frame
                    t += 1
                if t >= len(fetch):
                    return
                # Cheaper to seek to the next frame's keyframe; but not to the one just
                # sought: a demuxer that lands before it would make us seek for ever.
                if key_of(fetch[t]) > position + 1 and key_of(fetch[t]) != sought:
                    seek_next = True
                    break
            if seek_next or drained:
                break  # a drained decoder takes no more packets until the seek flushes it
        else:
            return  # end of stream
        ctx.skip_frame = "DEFAULT"
        if t < len(fetch) and fetch[t] == target and (drained or position >= target):
            t += 1  # its packet went in and no frame came out: give up on it


def _packet_cost(stream: av.video.stream.VideoStream) -> int:
    """Decode work of one packet, for a CancelToken's budget: the coded picture's pixels."""
    ctx = stream.codec_context
    return max(1, ctx.width * ctx.height)


def _drain(stream: av.video.stream.VideoStream) -> None:
    try:
        for _ in stream.decode(None):
            pass
    except av.error.FFmpegError:
        pass  # already drained, or a damaged tail: nothing left to hang on


def hardware_decoder(device_type: str) -> HWAccel | None:
    """FFmpeg's hardware decoder of `device_type` ("cuda" = NVDEC) if this machine has one.

    Creating the device is what fails without the hardware (PyAV raises instead of falling
    back, even with allow_software_fallback), so it is tried once here on an H.264 decoder.
    Codecs the hardware cannot decode still fall back to software at decode time.
    """
    try:
        accel = HWAccel(device_type, allow_software_fallback=True)
        accel.create(av.Codec("h264", "r"))
    except (av.error.FFmpegError, ValueError, TypeError, OSError):
        return None
    return accel


def read_frames(
    path: Source,
    info: VideoInfo,
    indices: Sequence[int],
    size: tuple[int, int],
    policy: ResizePolicy = "stretch",
    threads: int = 0,
    mode: DecodeMode = "exact",
    loop_filter: bool = True,
    hwaccel: HWAccel | None = None,
    workers: int = 1,
    shorter: int | None = None,
    *,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Decode the frames at `indices` (repeats allowed) as uint8 [len(indices), H, W, 3].

    mode="fast" may return a nearby frame for an index (see fast_tolerance);
    read_frames_at says which frames were returned. loop_filter, hwaccel, workers: see
    read_frames_at.
    """
    return read_frames_at(path, info, indices, size, policy, threads, mode, loop_filter, hwaccel, workers,
                          shorter, cancel=cancel)[0]


def read_frames_at(
    path: Source,
    info: VideoInfo,
    indices: Sequence[int],
    size: tuple[int, int],
    policy: ResizePolicy = "stretch",
    threads: int = 0,
    mode: DecodeMode = "exact",
    loop_filter: bool = True,
    hwaccel: HWAccel | None = None,
    workers: int = 1,
    shorter: int | None = None,
    *,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, list[int]]:
    """read_frames, and the index of the frame returned for each of `indices`.

    In exact mode the indices returned are `indices` themselves, except for a frame lost
    to damage, which is reported as the nearest frame shown instead.

    loop_filter=False tells the decoder to skip its in-loop deblocking filter
    (`skip_loop_filter=all`, honoured by FFmpeg's H.264 and HEVC decoders): about a quarter less decode
    time for H.264. The filter's output is what later frames predict from, so the pictures
    drift from the exact ones along a GOP (block edges stay visible); after an area
    downscale to the model's size the difference is a few levels on average. The accuracy
    cost is measured by `python -m models.evaluate --decode ...` (README, BENCHMARKS.md).

    hwaccel (from hardware_decoder) decodes on that device, e.g. NVDEC. Should the
    hardware fail on this video, it is decoded again in software: same frames, more time.

    workers > 1 (files only): the frames are split by GOP over up to `workers` decoders of
    one thread each, run side by side, when that beats one decoder with `threads` frame
    threads (see split_by_gop). The frames returned are the same either way.

    cancel: checked before every packet sent to a decoder, and charged with its pixels;
    raises DecodeCancelled (DecodeBudgetExceeded) once it is cancelled (over budget).
    """
    if mode not in ("exact", "fast"):
        raise ValueError(f"mode must be 'exact' or 'fast', not {mode!r}")
    targets = sorted(set(indices))
    plan = _fast_plan(info, targets) if mode == "fast" else {i: i for i in targets}
    # Cheapest first; what fails is tried again the plain way: software, then exact mode.
    attempts = [(mode, hwaccel)] + ([(mode, None)] if hwaccel is not None else [])
    if mode == "fast":
        attempts.append(("exact", None))
    for k, (how, accel) in enumerate(attempts):
        if how == "exact" and mode == "fast":
            plan = {i: i for i in targets}
        try:
            if accel is None and workers > 1 and isinstance(path, (str, Path)):
                got = _decode_split(_Job(path, info, size, policy, how, loop_filter, shorter, cancel), plan, threads,
                                    workers)
            else:
                got = _decode_targets(_Job(path, info, size, policy, how, loop_filter, shorter, cancel), plan, threads,
                                      accel)
            break
        except VideoDecodeError:
            if k == len(attempts) - 1:
                raise
    decoded = sorted(got)
    out = np.empty((len(indices), size[0], size[1], 3), np.uint8)
    returned = []
    for i, index in enumerate(indices):
        want = plan[index]
        if want not in got:
            # A frame lost to damage: show the nearest one that decoded.
            j = bisect.bisect_left(decoded, want)
            want = min(decoded[max(0, j - 1) : j + 1], key=lambda d: abs(d - want))
        out[i] = got[want]
        returned.append(want)
    return out, returned


# How much faster FFmpeg's frame threads decode H.264 with 2 threads than with 1: 2.42 s ->
# 1.67 s (1.45x) for the 64 frames /classify takes from a 60 s 1080p clip on the 2-core CI
# machine, while two one-thread decoders on two halves of the GOPs took 1.38 s (1.75x).
FRAME_THREAD_SPEEDUP = 1.45


def split_by_gop(info: VideoInfo, fetch: Sequence[int], workers: int) -> list[list[int]]:
    """Share the sorted frame indices `fetch` among up to `workers` decoders by whole GOPs.

    A GOP's cost is the frames decoded to reach its last wanted frame from its keyframe;
    the costliest GOPs go first, each to the least loaded decoder. Returns one group when
    splitting would not beat frame threads (few GOPs, or one GOP holding most of the work).
    """
    keyframes = info.keyframes
    gops: dict[int, list[int]] = {}
    for f in fetch:
        gops.setdefault(keyframes[bisect.bisect_right(keyframes, f) - 1], []).append(f)
    costs = sorted(((max(v) - k + 1, v) for k, v in gops.items()), key=lambda c: -c[0])
    loads = [0] * max(1, workers)
    groups: list[list[int]] = [[] for _ in loads]
    for cost, members in costs:
        j = loads.index(min(loads))
        loads[j] += cost
        groups[j] += members
    total = sum(loads)
    if workers < 2 or total == 0 or total / max(loads) < FRAME_THREAD_SPEEDUP:
        return [sorted(fetch)]
    return [sorted(g) for g in groups if g]


def planned_cost(info: VideoInfo, indices: Sequence[int], mode: DecodeMode = "exact") -> int:
    """Frames a decoder goes through to return `indices`: for each GOP, from its keyframe to the
    last frame wanted in it (what read_frames decodes, before any split over workers). Known
    from the probe's index alone, so a request's decode work can be refused before it starts."""
    targets = sorted(set(indices))
    fetch = set(_fast_plan(info, targets).values()) if mode == "fast" else set(targets)
    keyframes = info.keyframes
    last: dict[int, int] = {}
    for f in fetch:
        k = keyframes[bisect.bisect_right(keyframes, f) - 1]
        last[k] = max(last.get(k, f), f)
    return sum(f - k + 1 for k, f in last.items())


@dataclass(frozen=True)
class _Job:
    """What one read_frames call decodes, and how (the plan and the threading vary)."""

    path: Source
    info: VideoInfo
    size: tuple[int, int]
    policy: ResizePolicy
    mode: DecodeMode
    loop_filter: bool
    shorter: int | None = None  # S of shorter_side_crop
    cancel: CancelToken | None = None


def _decode_split(job: _Job, plan: dict[int, int], threads: int, workers: int) -> dict[int, np.ndarray]:
    groups = split_by_gop(job.info, sorted(set(plan.values())), workers)
    if len(groups) == 1:
        return _decode_targets(job, plan, threads, None)
    members = [set(g) for g in groups]
    plans = [{t: f for t, f in plan.items() if f in m} for m in members]

    def one(sub: dict[int, int]) -> dict[int, np.ndarray]:
        try:
            return _decode_targets(job, sub, 1, None)
        except VideoDecodeError:
            return {}  # a damaged part: the nearest decoded frames stand in, as for lost frames

    # PyAV releases the GIL while FFmpeg decodes, so threads run the decoders in parallel.
    with ThreadPoolExecutor(len(plans), thread_name_prefix="gop") as pool:
        parts = list(pool.map(one, plans))
    got = {k: v for part in parts for k, v in part.items()}
    if not got:
        raise VideoDecodeError("no frame of the video could be decoded")
    return got


def _decode_targets(
    job: _Job, plan: dict[int, int], threads: int, hwaccel: HWAccel | None
) -> dict[int, np.ndarray]:
    """Decode the frames `plan` maps to: {frame index: uint8 [H, W, 3]}; raises if none decode."""
    path, info = job.path, job.info
    got: dict[int, np.ndarray] = {}
    with _open(path, hwaccel) as container:
        stream = _video_stream(container)
        if isinstance(path, (str, Path)) and hwaccel is None:
            # Frame threads with a Python file object as the source can deadlock on close
            # (seen with Matroska in memory); in-memory clips are small anyway.
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
        if not job.loop_filter:
            # Codec options apply when the decoder opens, at the first packet decoded.
            stream.codec_context.options = {"skip_loop_filter": "all"}
        try:
            if job.mode == "fast":
                frames = _decode_fast(container, stream, info, sorted(set(plan.values())), job.cancel)
            else:
                frames = _decode_wanted(container, stream, info, list(plan), job.cancel)
            framer = _Framer()
            for index, frame in frames:
                got[index] = to_rgb(frame, job.size, info.rotation, job.policy, job.shorter, framer)
            # Closing a frame-threaded decoder that still holds frames can hang for good
            # (PyAV 18 / FFmpeg 8: seen in exact mode after the last target): drain it first.
            # The frames drained are discarded, so what is returned does not change.
            _drain(stream)
        except DecodeCancelled:
            _drain(stream)  # as above: never close a decoder that still holds frames
            raise
        except av.error.FFmpegError as exc:
            if not got:
                raise VideoDecodeError(f"the video cannot be decoded ({_reason(exc)})") from exc
    if not got:
        raise VideoDecodeError("no frame of the video could be decoded")
    return got


@dataclass(frozen=True)
class SampledClip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    indices: list[int]
    timestamps: list[float]


def sample_frames(
    path: Source,
    num_frames: int,
    size: tuple[int, int],
    *,
    info: VideoInfo | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    policy: ResizePolicy = "stretch",
    threads: int = 0,
    mode: DecodeMode = "exact",
    loop_filter: bool = True,
    hwaccel: HWAccel | None = None,
    workers: int = 1,
    shorter: int | None = None,
    cancel: CancelToken | None = None,
) -> SampledClip:
    """Sample `num_frames` frames uniformly over [start_s, end_s) (the whole video by default).

    mode="fast" may take a frame up to just under half a sampling step from the uniform
    position (fast_tolerance); `indices` and `timestamps` are those of the frames taken.
    """
    info = info or probe_video(path, cancel=cancel)
    indices = uniform_indices(info, num_frames, start_s, end_s)
    frames, returned = read_frames_at(path, info, indices, size, policy, threads, mode, loop_filter, hwaccel,
                                      workers, shorter, cancel=cancel)
    if mode == "fast":
        indices = returned  # exact mode reports the indices asked for, as before
    return SampledClip(frames, indices, [info.timestamp(i) for i in indices])


def normalize(
    frames: np.ndarray, mean: Sequence[float], std: Sequence[float], rescale: float = 1.0 / 255.0
) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W], times `rescale` (1/255: [0, 1]) then standardized."""
    x = frames.astype(np.float32) * np.float32(rescale)
    x -= np.asarray(mean, np.float32)
    x *= 1.0 / np.asarray(std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))

