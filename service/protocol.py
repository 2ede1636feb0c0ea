"""uvicorn's HTTP protocol (httptools) with bounds on request heads, and problem+json for
the errors uvicorn answers itself.

What uvicorn does on its own (0.3x-0.5x): with httptools, the default of uvicorn[standard],
nothing bounds a request line or its headers (a 100 MB header was read in full), nor the
time a client may take to send them; with h11, `h11_max_incomplete_event_size` (16 KiB by
default) bounds them and an excess is a text/plain 400. A request it cannot parse gets a
text/plain 400 "Invalid HTTP request received." and the connection closes. The app never
sees any of these, so this subclass, given to uvicorn as `http=`, answers them:

- request line + headers beyond MAX_HEADER_BYTES, or more than MAX_HEADER_COUNT headers:
  431 problem+json, connection closed (counted as the bytes arrive, before httptools has
  buffered a whole oversize header);
- a head not complete within HEADER_TIMEOUT_S of its first byte: 408 problem+json, closed;
- unparseable HTTP: 400 problem+json (uvicorn's text/plain one, reworded) and closed.

Still text/plain from uvicorn, out of this module's reach: the 500 uvicorn sends when an ASGI
app crashes before answering (the app's own handler turns every exception into problem+json
first, so this does not happen in practice), and anything uvicorn writes after the app has
started answering.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.settings import Settings


class _TooManyHeaders(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = 65536
    max_header_count = 100
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # bytes arriving now belong to a request line or headers
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # --------------------------------------------------------------- counting
    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)
        # uvicorn's data_received, with our answers: an exception raised in a parser callback
        # (on_header) comes out of feed_data as an HttpParserError caused by it.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__ or exc.__cause__, _TooManyHeaders):
                self._reject(431, f"more than {self.max_header_count} request headers; send fewer")
            else:
                self.send_400_response("the request is not valid HTTP/1.1; check the client")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except _TooManyHeaders:
            self._reject(431, f"more than {self.max_header_count} request headers; send fewer")
            return
        if self._in_head and self._head_bytes > self.max_header_bytes:
            self._reject(
                431, f"the request line and headers are larger than {self.max_header_bytes} bytes; send smaller ones"
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_header_count:
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next request on this connection starts with its head
        self._head_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _end_head(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._reject(408, f"the request headers did not arrive within {self.header_timeout_s:g} s")

    # --------------------------------------------------------------- answers
    def send_400_response(self, msg: str) -> None:
        self._reject(400, msg if msg != "Invalid HTTP request received." else "the request is not valid HTTP")

    def _reject(self, status: int, detail: str) -> None:
        self._cancel_timer()
        self._in_head = False
        if self.transport.is_closing():
            return
        self.logger.warning("refused a request: %d %s", status, detail)
        title = STATUS_LINE[status].decode().split(" ", 2)[2].strip()
        body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self.transport.close()


def protocol_class(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol for uvicorn.Config(http=...), with this service's bounds."""
    return type(
        "ServiceHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "max_header_count": settings.max_header_count,
            "header_timeout_s": settings.header_timeout_s,
        },
    )
