"""Probe uploads in worker processes that can be killed.

A decode loop stops at its next packet when its request is cancelled (models.cancel), but
opening a container runs inside one FFmpeg call that nothing can interrupt: a Matroska file
with 200k distinct tags spends minutes in it (FFmpeg's dictionary makes each insertion
linear), and a file with hundreds of streams or a huge coded size allocates there. So the
first open of an upload, and its packet index (models.frames.probe_video, with its header
limits), run in a pebble process pool: when the request is answered or gone, or
PROBE_TIMEOUT_S passes, the worker is killed and replaced, and the service's own process
never holds the memory. What comes back (VideoInfo) lets the service refuse what is beyond
its limits, MAX_METADATA_ENTRIES included, before it opens the file itself.

Workers are forked from a forkserver that has imported models.frames once: a fresh worker
after a kill costs a fork, not an interpreter start, and no worker inherits the threads of
the service (ONNX Runtime, decoders) that forking it directly would copy mid-flight.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import CancelledError
from pathlib import Path

from pebble import ProcessPool
from pebble.common import ProcessExpired

from models.frames import HeaderLimits, VideoDecodeError, VideoInfo, probe_video


class ProbeTimeout(Exception):
    """The probe ran past its own time limit (not the request's deadline)."""


def _probe(path: str, limits: HeaderLimits) -> VideoInfo:
    return probe_video(path, limits=limits)


class ProbePool:
    def __init__(self, workers: int, max_tasks: int = 200) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["models.frames"])
        # max_tasks: a worker is replaced now and then, so heap fragmentation from odd files
        # does not accumulate in a long-lived process.
        self._pool = ProcessPool(max_workers=workers, max_tasks=max_tasks, context=ctx)

    async def probe(self, path: Path, limits: HeaderLimits, timeout_s: float) -> VideoInfo:
        """probe_video(path, limits=limits) in a worker; raises ProbeTimeout after `timeout_s`.

        Cancelling the awaiting task (a 504, a client gone, a drain) kills the worker.
        """
        future = self._pool.schedule(_probe, args=(str(path), limits), timeout=timeout_s)
        try:
            return await asyncio.wrap_future(future)
        except TimeoutError:
            raise ProbeTimeout(f"indexing the file took more than {timeout_s:g} s") from None
        except ProcessExpired as exc:
            raise VideoDecodeError(f"the demuxer crashed on this file (exit code {exc.exitcode})") from None
        except CancelledError:
            raise asyncio.CancelledError from None
        finally:
            if not future.done():
                future.cancel()  # pebble terminates the worker running it

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=10)

