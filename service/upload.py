"""Stream the multipart field `file` to a bounded temporary file.

FastAPI's UploadFile would buffer the whole body before the route runs; here the body is
parsed as it arrives, so an oversize upload is refused as soon as it crosses the limit.
The client's file name is never used: the temporary file gets a random name in TMP_DIR.

Every temporary file is named `motion-serve-upload-*.part` and holds an exclusive flock for
as long as its request runs; what survives a kill -9 is therefore recognisable as ours and
unlocked, and sweep_leftovers removes exactly that at startup (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import ApiError

log = logging.getLogger("service")

FIELD = "file"
_MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small extra fields
PREFIX, SUFFIX = "motion-serve-upload-", ".part"
# RFC 2046 allows at most 70 characters; python-multipart refuses more than 256.
_MAX_BOUNDARY = 70


def _limit_detail(limit: int) -> str:
    return f"the upload is larger than the limit of {limit} bytes; send a smaller or shorter video"


class _FileSink:
    """python-multipart callbacks that write the `file` part to `fh`, counting bytes."""

    def __init__(self, fh: object, limit: int) -> None:
        self.fh = fh
        self.limit = limit
        self.size = 0
        self.found = False
        self.ended = False  # the closing boundary was seen
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_header_field": self._header_field_cb,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_end": self._end,
        }

    def _end(self) -> None:
        self.ended = True

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        # Only the first `file` part counts; a second one is ignored rather than appended.
        self._in_file = params.get(b"name") == FIELD.encode() and not self.found
        if self._in_file:
            self.found = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return  # other form fields are not used (parameters are query parameters)
        self.size += end - start
        if self.size > self.limit:
            raise ApiError(413, _limit_detail(self.limit))
        self.fh.write(data[start:end])  # type: ignore[attr-defined]


def _boundary(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "")
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise ApiError(
            415,
            f"expected multipart/form-data with the video in field '{FIELD}', got "
            f"'{content_type or 'no content type'}'; e.g. curl -F {FIELD}=@video.mp4",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "the multipart/form-data content type has no boundary; let your client set it")
    if len(boundary) > _MAX_BOUNDARY:
        raise ApiError(
            400, f"the multipart boundary is {len(boundary)} characters long, more than the {_MAX_BOUNDARY} "
            "RFC 2046 allows; let your client choose it",
        )
    return boundary


def check_request(request: Request, limit: int) -> None:
    """Cheap checks before reading any body: media type and declared length."""
    _boundary(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _MULTIPART_OVERHEAD:
        raise ApiError(413, _limit_detail(limit))


async def _chunks(request: Request, idle_s: float) -> AsyncIterator[bytes]:
    """The body's chunks; 408 when none arrives for `idle_s` (a stalled client must not hold a
    socket, an fd and a temp file for ever)."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                408, f"no part of the upload arrived for {idle_s:g} s; send the whole body without pausing",
                {"Connection": "close"},
            ) from None
        yield chunk


@contextlib.asynccontextmanager
async def receive_upload(
    request: Request, limit: int, tmp_dir: Path | None, idle_s: float = 15.0
) -> AsyncIterator[Path]:
    """Yield the path of the uploaded video; the file is removed on every path out.

    The whole body counts against the limit (other fields, a second `file` part), whatever
    Content-Length says or when there is none (chunked).
    """
    boundary = _boundary(request)
    fd, name = tempfile.mkstemp(prefix=PREFIX, suffix=SUFFIX, dir=tmp_dir)
    path = Path(name)
    fh = os.fdopen(fd, "wb")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "in use" for sweep_leftovers
        sink = _FileSink(fh, limit)
        total = 0
        try:
            parser = MultipartParser(boundary, sink.callbacks())
            async for chunk in _chunks(request, idle_s):
                total += len(chunk)
                if total > limit + _MULTIPART_OVERHEAD:
                    raise ApiError(413, _limit_detail(limit))
                parser.write(chunk)
            parser.finalize()
        except ClientDisconnect:
            raise ApiError(400, "the client went away before the upload finished") from None
        except ApiError:
            raise
        except Exception as exc:  # python-multipart raises its own errors for bad framing
            raise ApiError(
                400, f"the multipart body is malformed ({exc}); let your client encode it"
            ) from None
        fh.flush()
        if not sink.found:
            raise ApiError(422, f"the multipart field '{FIELD}' is missing; send the video as {FIELD}=@video")
        if not sink.ended:
            raise ApiError(
                400, "the multipart body ends without its closing boundary (truncated upload?); send it again"
            )
        if sink.size == 0:
            raise ApiError(400, f"the field '{FIELD}' is empty; send a video file")
        yield path
    finally:
        path.unlink(missing_ok=True)
        fh.close()  # after the unlink: the lock is held until the name is gone


def sweep_leftovers(tmp_dir: Path | None, min_age_s: float = 2.0) -> int:
    """Remove uploads a killed process left in `tmp_dir`: files named like ours that no live
    process holds a lock on (and older than `min_age_s`, so that a file another instance is
    creating right now is never taken). Nothing else in the directory is touched."""
    directory = Path(tmp_dir or tempfile.gettempdir())
    removed = 0
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        try:
            if not path.is_file() or path.is_symlink() or time.time() - path.stat().st_mtime < min_age_s:
                continue
            with open(path, "rb") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a running request's upload
                path.unlink()
                removed += 1
        except OSError as exc:
            log.warning("could not sweep %s: %s", path, exc)
    if removed:
        log.info("removed %d upload(s) left in %s by a process that died", removed, directory)
    return removed
