"""Prometheus metrics of one service process (a registry per app, so tests can run several).

With ``uvicorn --workers N`` each worker has its own registry: a scrape of the shared port sees one
worker's counters. Scrape workers separately (one port each) or aggregate in Prometheus by instance.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ROUTES = ("/v1/recommend", "/v1/similar", "/healthz", "/readyz", "/metrics")
# 0.5 ms .. 5 s: loopback requests of a small index take ~1 ms, the ranker adds ~10 ms
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("recsys_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.latency = Histogram("recsys_request_seconds", "Request latency by route", ["route"], buckets=BUCKETS,
                                 registry=r)
        self.version = Gauge("recsys_version_info", "The version served (1 on its label)", ["version"], registry=r)
        self.load_seconds = Gauge("recsys_version_load_seconds", "Seconds the served version took to load + verify",
                                  registry=r)
        self.loaded_at = Gauge("recsys_version_loaded_timestamp_seconds", "When the served version was swapped in",
                               registry=r)
        self.fallbacks = Counter("recsys_fallbacks", "Queries answered by popular items (unknown user/item, empty "
                                 "history)", ["route"], registry=r)
        self.reloads = Counter("recsys_reloads", "Version loads by outcome (ok / failed verification or load)",
                               ["outcome"], registry=r)

    @staticmethod
    def route(path: str) -> str:
        return path if path in ROUTES else "other"  # bounded label values

    def served(self, *, version: str, seconds: float, at: float) -> None:
        self.version.clear()
        self.version.labels(version=version).set(1)
        self.load_seconds.set(seconds)
        self.loaded_at.set(at)

    def render(self) -> bytes:
        return generate_latest(self.registry)
