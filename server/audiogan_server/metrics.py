"""Prometheus metrics, in a registry of the server's own (several servers can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

# From a listing's millisecond to the longest call the default limits allow: a stream of 600 s of audio
# (limits.max_audio_seconds) played as it arrives lasts 600 s, and a long conversion takes a minute on CPU.
# Past the last bucket a histogram says only "more", and quantiles stop at it.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                   300, 600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # memory, CPU, open files: a registry of our own has none
        self.serving = Gauge("audiogan_serving", "1 while the models are loaded and calls are taken; 0 while "
                             "loading and once shutting down", registry=self.registry)
        self.requests = Counter("audiogan_requests", "RPCs by method and status code", ["method", "code"],
                                registry=self.registry)
        self.latency = Histogram("audiogan_request_seconds", "RPC wall time", ["method"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.first_audio = Histogram("audiogan_time_to_first_audio_seconds", "request start to first audio chunk",
                                     ["method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("audiogan_batch_size", "items per batched forward pass", ["batcher"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queued = Gauge("audiogan_queued_items", "items waiting for a model pass", ["batcher"],
                            registry=self.registry)
        self.in_flight = Gauge("audiogan_in_flight", "RPCs being served", registry=self.registry)
        self.audio_seconds = Counter("audiogan_audio_seconds", "seconds of audio sent to callers", ["method"],
                                     registry=self.registry)
        self.reply_bytes = Gauge("audiogan_reply_bytes", "memory held by unary replies being made (estimated)",
                                 registry=self.registry)
        self.reply_waiting = Gauge("audiogan_reply_waiting", "unary calls waiting for memory for their reply",
                                   registry=self.registry)

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def observe_audio(self, method: str, seconds: float) -> None:
        if seconds:
            self.audio_seconds.labels(method).inc(seconds)

    def observe_replies(self, held: int, waiting: int) -> None:
        self.reply_bytes.set(held)
        self.reply_waiting.set(waiting)

    def observe_batch(self, batcher: str, size: int) -> None:
        self.batch_size.labels(batcher).observe(size)

    def watch_queue(self, batcher: str, length: Callable[[], int]) -> None:
        """``length`` is read at each scrape: the queue as it is then, not as it was at the last pass."""
        self.queued.labels(batcher).set_function(length)

    def serve(self, port: int, host: str) -> None:
        start_http_server(port, addr=host, registry=self.registry)
