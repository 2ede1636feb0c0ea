"""Request counts and latencies per endpoint and status, for every request."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False  # whether a response began: none did when the client left first
        inference = scope["method"] == "POST"  # every POST route is an inference request
        if inference:
            self.metrics.in_flight.inc()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
            if not started:
                # Returned without answering: the client hung up and service.guard cancelled
                # its work (nginx's 499), which is not a server error.
                status = 499
        finally:
            if inference:
                self.metrics.in_flight.dec()
            route = scope.get("route")
            # The route template, not the raw path: unknown paths must not create new series.
            endpoint = getattr(route, "path", None) or "unmatched"
            labels = {"endpoint": endpoint, "status": str(status)}
            self.metrics.requests.labels(method=scope["method"], **labels).inc()
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - start)
            # Set by the handler (request.state.model) once it knows which model answers.
            model = (scope.get("state") or {}).get("model")
            if model is not None:
                self.metrics.model_requests.labels(model=model, **labels).inc()
