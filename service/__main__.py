"""`python -m service`: serve the configured model with uvicorn on HOST:PORT (`--help`: usage
and settings; client commands: service/cli.py).

SIGTERM drains: /readyz turns 503 at once, new requests get 503 for DRAIN_DELAY_S (so a
load balancer stops sending), then uvicorn stops accepting and gives in-flight requests
up to DRAIN_GRACE_S to finish before the worker stops. Those still running then are
answered 503 problem+json with Retry-After (service.guard), and uvicorn's own cutoff, a
moment later, finds nothing left to answer with its text/plain 500.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.guard import abort_inflight
from service.protocol import protocol_class
from service.settings import Settings

# uvicorn cancels what still runs this long after our own 503s went out.
_CUTOFF_MARGIN_S = 2.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_delay_s: float, drain_grace_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_delay_s = drain_delay_s
        self.drain_grace_s = drain_grace_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self.app.state.service
        if self._draining or not self.drain_delay_s:
            if not state.draining:
                self._abort_after(self.drain_grace_s)
            state.draining = True
            super().handle_exit(sig, frame)
            return
        self._draining = True
        state.draining = True
        logging.getLogger("service").info("draining: not ready, closing in %.1f s", self.drain_delay_s)
        self._abort_after(self.drain_delay_s + self.drain_grace_s)
        timer = threading.Timer(self.drain_delay_s, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()

    def _abort_after(self, seconds: float) -> None:
        """Answer what still runs `seconds` from now with 503 (on the event loop's thread)."""
        state = self.app.state.service

        def fire() -> None:
            if state.loop is not None and not state.loop.is_closed():
                state.loop.call_soon_threadsafe(abort_inflight, state)

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        timer.start()


def serve() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    server = DrainingServer(server_config(app, settings), app, settings.drain_delay_s, settings.drain_grace_s)
    server.run()
    if not server.started:
        sys.exit(3)  # startup failed (e.g. a model directory did not load): said in the log


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.drain_grace_s + _CUTOFF_MARGIN_S,
        lifespan="on",
        http=protocol_class(settings),
    )


def main() -> None:
    """`motion-serve` / `python -m service`: serve, or a client command (service/cli.py)."""
    from service.cli import main as cli_main

    raise SystemExit(cli_main())


if __name__ == "__main__":
    main()
