"""Work nobody waits for stops: per-request cancellation, and 503s when a drain runs out.

- RequestGuard (one per upload request, once its body is in): owns the request's
  models.cancel.CancelToken (deadline, decode budget). A watcher cancels it, and the
  request's task, as soon as the client goes away; leaving the guard cancels it whatever
  happened (answer, 504, error), so decode threads still running stop at their next packet.
- InflightMiddleware: every HTTP request runs in its own task, known to the service state.
  When the drain's grace runs out, abort_inflight() cancels the requests that have not
  started answering and answers them 503 problem+json with Retry-After (uvicorn would cancel
  them itself a moment later and answer a text/plain 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.cancel import CancelToken

log = logging.getLogger("service")
SCOPE_KEY = "motion.inflight"


@dataclass(eq=False)
class Inflight:
    task: asyncio.Future
    started: bool = False  # the response has started: it can no longer become a 503
    aborted: str | None = None  # why the task was cancelled from outside: "drain" or "client"
    tokens: list[CancelToken] = field(default_factory=list)

    def abort(self, reason: str) -> None:
        for token in self.tokens:
            token.cancel(reason)
        if self.aborted is None and not self.task.done():
            self.aborted = reason
            self.task.cancel()


class RequestGuard:
    """`async with RequestGuard(request, timeout_s, budget_px) as token:` for the decode part."""

    def __init__(self, request: Request, timeout_s: float, budget_px: int | None) -> None:
        self.request = request
        self.token = CancelToken(deadline=time.monotonic() + timeout_s, max_pixels=budget_px)
        self._watcher: asyncio.Task | None = None
        self._inflight: Inflight | None = request.scope.get(SCOPE_KEY)

    async def __aenter__(self) -> CancelToken:
        if self._inflight is not None:
            self._inflight.tokens.append(self.token)
        self._watcher = asyncio.create_task(self._watch())
        return self.token

    async def __aexit__(self, *exc: object) -> None:
        self.token.cancel("done")
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch(self) -> None:
        # The body has been read, so the next ASGI message can only be http.disconnect:
        # the client closed the connection (or, harmlessly, the response has completed).
        message = await self.request.receive()
        if message["type"] == "http.disconnect":
            self.token.cancel("client")
            if self._inflight is not None:
                self._inflight.abort("client")


def _problem_bytes(status: int, title: str, detail: str) -> bytes:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json.dumps(body).encode()


class InflightMiddleware:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry: Inflight

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.started = True
            await send(message)

        scope[SCOPE_KEY] = None
        task = asyncio.ensure_future(self.app(scope, receive, send_wrapper))
        entry = Inflight(task)
        scope[SCOPE_KEY] = entry
        self.state.inflight.add(entry)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if entry.aborted is None or (current is not None and current.cancelling()):
                raise  # cancelled from outside (uvicorn's own shutdown): not ours to answer
            if entry.aborted == "drain" and not entry.started:
                retry = str(self.state.settings.retry_after_s)
                body = _problem_bytes(
                    503, "Service Unavailable",
                    "the service shut down before this request finished; retry it (on another instance)",
                )
                await send({"type": "http.response.start", "status": 503, "headers": [
                    (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry.encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
            # "client": nobody is there to answer.
        finally:
            self.state.inflight.discard(entry)


def abort_inflight(state: Any, reason: str = "drain") -> int:
    """Cancel every request that has not started its answer; returns how many."""
    pending = [e for e in state.inflight if not e.started]
    for entry in pending:
        entry.abort(reason)
    if pending:
        log.warning("drain grace over: answering %d unfinished request(s) with 503", len(pending))
    return len(pending)
