"""`python -m service`: serve the configured model with uvicorn on HOST:PORT.

SIGTERM drains: /readyz turns 503 at once, new requests get 503 for DRAIN_DELAY_S (so a
load balancer stops sending), then uvicorn stops accepting and gives in-flight requests
up to DRAIN_GRACE_S to finish before the worker stops.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_delay_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_delay_s = drain_delay_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self.app.state.service
        if self._draining or not self.drain_delay_s:
            state.draining = True
            super().handle_exit(sig, frame)
            return
        self._draining = True
        state.draining = True
        logging.getLogger("service").info("draining: not ready, closing in %.1f s", self.drain_delay_s)
        timer = threading.Timer(self.drain_delay_s, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.drain_grace_s,
        lifespan="on",
    )
    server = DrainingServer(config, app, settings.drain_delay_s)
    server.run()
    if not server.started:
        sys.exit(3)  # startup failed (e.g. a model directory did not load): said in the log


if __name__ == "__main__":
    main()
