"""The ingest's Prometheus metrics, in a registry of its own (one per service instance)."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Lags from seconds (live) to days (a vehicle emptying its outbox after a long outage).
_LAG_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class BulkHistogram(Collector):
    """A histogram without labels that takes many observations in one call: the lag of every
    reading of a batch (tens of thousands) would cost a lock and a bucket search in Python each
    with `Histogram.observe`; here one lock per batch and a C `bisect` per value."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = sorted(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        where = bisect.bisect_left
        bounds = self._bounds
        counts = [0] * len(self._counts)
        total = 0.0
        for value in values:
            counts[where(bounds, value)] += 1  # the first bound >= value: Prometheus's `le`
            total += value
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip([*map(floatToGoString, self._bounds), "+Inf"], counts, strict=True):
            cumulative += n
            buckets.append((bound, float(cumulative)))
        family = HistogramMetricFamily(self._name, self._documentation)
        family.add_metric([], buckets, total)
        yield family


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "envpatrol_ingest_messages", "MQTT messages committed, by topic kind", ["kind"],
            registry=r,
        )  # fmt: skip
        self.readings = Counter(
            "envpatrol_ingest_readings",
            "Readings in accepted messages, by outcome: stored, or duplicate (already stored)",
            ["outcome"],
            registry=r,
        )
        self.batches = Counter("envpatrol_ingest_batches", "Batches committed", registry=r)
        self.batch_seconds = Histogram(
            "envpatrol_ingest_batch_seconds",
            "Time to write and commit one batch",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_messages = Histogram(
            "envpatrol_ingest_batch_messages",
            "Messages per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
            registry=r,
        )
        self.dead_letters = Counter(
            "envpatrol_ingest_dead_letters", "Messages rejected, by reason", ["reason"], registry=r
        )
        self.lag = BulkHistogram(
            "envpatrol_ingest_reading_lag_seconds",
            "From a reading's time to the commit that stored it",
            _LAG_BUCKETS,
            r,
        )
        self.passes = Counter(
            "envpatrol_ingest_passes_written", "Passes (re)computed around new readings", registry=r
        )
        self.dropped = Counter(
            "envpatrol_ingest_messages_dropped",
            "QoS 0 messages dropped unparsed, oldest first, while the inbox was full",
            registry=r,
        )
        self.db_errors = Counter(
            "envpatrol_ingest_database_errors", "Failed batch attempts (retried)", registry=r
        )
        self.connected = Gauge(
            "envpatrol_ingest_broker_connected", "1 while connected to the broker", registry=r
        )

    def observe_lags(self, seconds: Iterable[float]) -> None:
        self.lag.observe_many(seconds)
