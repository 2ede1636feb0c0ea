"""Prometheus metrics, one registry per app so tests can build several apps in one process."""

from __future__ import annotations

from dataclasses import dataclass

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
        # One batching worker per model: its series carry the model's name.
        self.queue_depth = Gauge("batcher_queue_depth", "clips waiting for inference", ["model"], registry=r)
        # What the HPA scales on (deploy/): on CPU the service is decode-bound, so clips rarely
        # wait for inference while requests wait for a decoder; this counts both.
        self.in_flight = Gauge(
            "requests_in_flight", "inference requests (POST) being received, decoded or inferred", registry=r
        )
        self.batch_size = Histogram(
            "batcher_batch_size", "clips per inference batch", ["model"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "batcher_queue_wait_seconds", "time a clip waited in the queue", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.inference = Histogram(
            "inference_seconds", "ONNX Runtime time per batch", ["model"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.model_requests = Counter(
            "model_requests", "requests that named a model, by model, endpoint and status",
            ["model", "endpoint", "status"], registry=r,
        )
        self.decode = Histogram(
            "decode_seconds", "probe + decode + resize time per request", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.rejected = Counter(
            "batcher_rejected", "clips refused because the queue was full", ["model"], registry=r
        )
        self.batch_failures = Counter(
            "batcher_failed_batches", "batches whose inference raised", ["model"], registry=r
        )

    def for_model(self, model: str) -> ModelMetrics:
        """The series of one model's batching worker."""
        return ModelMetrics(
            queue_depth=self.queue_depth.labels(model=model),
            batch_size=self.batch_size.labels(model=model),
            queue_wait=self.queue_wait.labels(model=model),
            inference=self.inference.labels(model=model),
            rejected=self.rejected.labels(model=model),
            batch_failures=self.batch_failures.labels(model=model),
        )


@dataclass(frozen=True)
class ModelMetrics:
    queue_depth: Gauge
    batch_size: Histogram
    queue_wait: Histogram
    inference: Histogram
    rejected: Counter
    batch_failures: Counter
