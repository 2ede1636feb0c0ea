"""A second multi-scene renderer for the shot benchmark: FFmpeg filter graphs, not numpy.

Written from a description alone ("3-7 scenes of 1-4 s; hard cuts, 0.5 s fades and dissolves,
fades through black, wipes; noise and blotchy textured backgrounds; camera moves; some cuts
between shots of the same colour"), sharing no code with bench/scenegen.py. Every picture and
every transition is made by the `ffmpeg` binary: lavfi sources (mandelbrot, life, cellauto,
testsrc2, gradients, sierpinski, colour + noise + blur) moved by crop/scroll/zoompan, and joined
by the `xfade` filter (fade, dissolve, fadeblack, wipes, slides, circles) or `concat` (hard cuts).
The file is encoded by ffmpeg's libx264.

Ground truth is each scene's clean span (no transition under way), as in bench.scenegen, so the
same scorer (bench.scenes.score_keyframes) applies.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from bench.scenegen import SceneSpan, SceneVideo

KINDS = ("mandel", "life", "cellauto", "testsrc", "blotch", "gradients", "sierpinski", "bars")
TYPES = ("hard", "fade", "dissolve", "fadeblack", "wipe", "mixed")
WIPES = ("wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "circleopen", "rectcrop")
SIZES = ((320, 180), (480, 270), (320, 240), (400, 224))


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(v) for v in np.clip(rgb, 0, 255))
    return f"0x{r:02X}{g:02X}{b:02X}"


def _scene(kind: str, w: int, h: int, fps: int, length: float, rng: np.random.Generator,
           colour: np.ndarray, seed: int) -> str:
    """An FFmpeg filter chain (no input) drawing one scene of `length` seconds."""
    vx, vy = rng.uniform(-60, 60), rng.uniform(-30, 30)  # camera speed, pixels per second
    grain = f"noise=alls={int(rng.integers(4, 16))}:allf=t"
    if kind == "mandel":
        chain = (f"mandelbrot=s={w}x{h}:rate={fps}:start_scale={rng.uniform(1.5, 3.0):.3f}"
                 f":end_scale={rng.uniform(0.05, 0.5):.3f},hue=h={rng.uniform(0, 360):.0f}")
    elif kind == "life":
        chain = (f"life=s={w // 4}x{h // 4}:rate={fps}:ratio={rng.uniform(0.2, 0.5):.2f}:seed={seed}"
                 f":mold=8:life_color={_hex(colour)}:death_color={_hex(colour * 0.25)}"
                 f":mold_color={_hex(colour[::-1])},scale={w}x{h}:flags=neighbor")
    elif kind == "cellauto":
        chain = (f"cellauto=s={w // 2}x{h // 2}:rate={fps}:rule={int(rng.choice([18, 30, 90, 110, 150]))}"
                 f":seed={seed}:random_fill_ratio=0.5,scale={w}x{h}:flags=neighbor,format=rgb24,"
                 f"lutrgb=r='val*{colour[0] / 255:.2f}':g='val*{colour[1] / 255:.2f}':b='val*{colour[2] / 255:.2f}'")
    elif kind == "testsrc":
        chain = (f"testsrc2=s={2 * w}x{2 * h}:rate={fps},hue=h={rng.uniform(0, 360):.0f},"
                 f"crop={w}:{h}:x='(in_w-out_w)*(0.5+0.45*sin(t*{vx / 100:.2f}))'"
                 f":y='(in_h-out_h)*(0.5+0.45*cos(t*{vy / 100:.2f}))'")
    elif kind == "blotch":
        # Blotches: static noise blurred into patches of one colour, scrolled (a pan), plus grain.
        cell = int(rng.integers(8, 24))
        chain = (f"color=c={_hex(colour)}:s={max(2, w // cell)}x{max(2, h // cell)}:r={fps},"
                 f"noise=c0s=100:c1s=12:c2s=12:all_seed={seed},scale={w}x{h}:flags=bicubic,"
                 f"eq=contrast={rng.uniform(1.2, 2.0):.2f},"
                 f"scroll=h={vx / w / fps:.5f}:v={vy / h / fps:.5f},{grain}")
    elif kind == "gradients":
        chain = (f"gradients=s={w}x{h}:rate={fps}:c0={_hex(colour)}:c1={_hex(255 - colour)}"
                 f":n=2:speed={rng.uniform(0.01, 0.04):.3f}:seed={seed},{grain}")
    elif kind == "sierpinski":
        chain = (f"sierpinski=s={w}x{h}:rate={fps}:seed={seed}:jump={int(rng.integers(1, 5))}"
                 f":type={rng.choice(['carpet', 'triangle'])},format=rgb24,"
                 f"lutrgb=r='val*{colour[0] / 255:.2f}+20':g='val*{colour[1] / 255:.2f}+20'"
                 f":b='val*{colour[2] / 255:.2f}+20'")
    elif kind == "bars":
        # A slow zoom into colour bars (zoompan: one output frame per input frame).
        chain = (f"smptehdbars=s={w}x{h}:rate={fps},hue=h={rng.uniform(0, 360):.0f},"
                 f"zoompan=z='min(1+0.004*on,2)':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=1:s={w}x{h}:fps={fps}")
    else:
        raise ValueError(kind)
    return f"{chain},trim=duration={length:.4f},setpts=PTS-STARTPTS,format=yuv420p,setsar=1,settb=AVTB"


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(40, 230, 3)


def generate_ffmpeg_video(path: str | Path, seed: int, transition: str = "mixed",
                          num_scenes: int | None = None) -> SceneVideo:
    """Render one multi-scene video with ffmpeg; returns its scenes' clean spans."""
    if not have_ffmpeg():
        raise RuntimeError("the ffmpeg binary is needed (apt-get install -y ffmpeg)")
    path = Path(path)
    rng = np.random.default_rng(seed)
    n = int(num_scenes or rng.integers(3, 8))
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    fps = int(rng.choice([24, 25, 30]))
    kinds: list[str] = []
    colours: list[np.ndarray] = []
    for i in range(n):
        if i and rng.uniform() < 0.3:
            # Same look, different picture: same kind and colour, another seed and direction.
            kinds.append(kinds[-1] if kinds[-1] in ("blotch", "life", "gradients") else "blotch")
            colours.append(colours[-1] if kinds[-1] == kinds[-2] else _colour(rng))
        else:
            kinds.append(str(rng.choice([k for k in KINDS if not kinds or k != kinds[-1]])))
            colours.append(_colour(rng))
    joins: list[tuple[str, float]] = []  # (xfade transition or "cut", duration)
    for _ in range(n - 1):
        kind = transition if transition != "mixed" else str(rng.choice(TYPES[:-1]))
        if kind == "hard":
            joins.append(("cut", 0.0))
        elif kind == "fade":
            joins.append(("fade", 0.5))
        elif kind == "dissolve":
            joins.append(("dissolve", 0.5))
        elif kind == "fadeblack":
            joins.append(("fadeblack", float(rng.uniform(0.6, 1.0))))
        else:
            joins.append((str(rng.choice(WIPES)), 0.5))
    clean = [float(rng.uniform(1.0, 4.0)) for _ in range(n)]

    chains: list[str] = []
    spans = layout(clean, joins, kinds)
    for i in range(n):
        length = scene_length(i, spans, joins)
        chains.append(f"{_scene(kinds[i], w, h, fps, length, rng, colours[i], seed * 10 + i)}[s{i}]")
    encode_edit(path, [], chains, joins, spans, fps, int(rng.integers(20, 28)), int(rng.choice([fps * 2, 250])))
    names = [("hard" if name == "cut" else name) for name, _ in joins]
    return SceneVideo(path, transition, spans, spans[-1].end_s, float(fps), names)


def layout(clean: list[float], joins: list[tuple[str, float]], kinds: list[str]) -> list[SceneSpan]:
    """Clean spans of scenes of `clean` seconds joined by `joins`: a transition overlaps the end of
    one scene's input and the start of the next one's, and belongs to neither."""
    spans, t = [], 0.0  # t: where scene i's input begins in the output
    for i, c in enumerate(clean):
        t_in = joins[i - 1][1] if i else 0.0
        spans.append(SceneSpan(kinds[i], round(t + t_in, 4), round(t + t_in + c, 4)))
        t += t_in + c
    return spans


def scene_length(i: int, spans: list[SceneSpan], joins: list[tuple[str, float]]) -> float:
    """How long scene i's input must be: its clean span plus the transitions on either side."""
    before = joins[i - 1][1] if i else 0.0
    after = joins[i][1] if i < len(joins) else 0.0
    return spans[i].end_s - spans[i].start_s + before + after


def encode_edit(path: Path, inputs: list[str], chains: list[str], joins: list[tuple[str, float]],
                spans: list[SceneSpan], fps: int, crf: int, gop: int) -> None:
    """Join the scene streams [s0], [s1], ... (made by `chains` from `inputs`) left to right with
    concat (hard cuts) or xfade, and encode the result with libx264."""
    chains = list(chains)
    acc = "s0"
    for i, (name, dur) in enumerate(joins):
        out = f"j{i}"
        if name == "cut":
            chains.append(f"[{acc}][s{i + 1}]concat=n=2:v=1:a=0[{out}]")
        else:
            # The transition starts where scene i's clean span ends (the output's clock).
            chains.append(
                f"[{acc}][s{i + 1}]xfade=transition={name}:duration={dur:.4f}:offset={spans[i].end_s:.4f}[{out}]"
            )
        acc = out
    chains.append(f"[{acc}]fps={fps},format=yuv420p[out]")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", ";".join(chains),
        "-map", "[out]", "-t", f"{spans[-1].end_s:.4f}", "-c:v", "libx264", "-preset", "veryfast",
        "-crf", str(crf), "-g", str(gop), "-pix_fmt", "yuv420p", str(path),
    ]
    subprocess.run(cmd, check=True, timeout=300)


if __name__ == "__main__":  # render one for a look: python -m bench.shotgen_ffmpeg out.mp4 SEED TYPE
    import sys

    v = generate_ffmpeg_video(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "mixed")
    print(v.to_json())
