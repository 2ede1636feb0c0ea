"""Prometheus metrics, one registry per app so tests can build several apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests", "HTTP requests by endpoint and status", ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["endpoint", "status"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge("batcher_queue_depth", "clips waiting for inference", registry=r)
        # What the HPA scales on (deploy/): on CPU the service is decode-bound, so clips rarely
        # wait for inference while requests wait for a decoder; this counts both.
        self.in_flight = Gauge(
            "requests_in_flight", "inference requests (POST) being received, decoded or inferred", registry=r
        )
        self.batch_size = Histogram(
            "batcher_batch_size", "clips per inference batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "batcher_queue_wait_seconds", "time a clip waited in the queue", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "inference_seconds", "ONNX Runtime time per batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.decode = Histogram(
            "decode_seconds", "probe + decode + resize time per request", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.rejected = Counter(
            "batcher_rejected", "clips refused because the queue was full", registry=r
        )
        self.batch_failures = Counter("batcher_failed_batches", "batches whose inference raised", registry=r)
