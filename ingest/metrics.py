"""The ingest's Prometheus metrics, in a registry of its own (one per service instance)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Lags from seconds (live) to days (a vehicle emptying its outbox after a long outage).
_LAG_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.dead_letters = Counter(
            "envpatrol_ingest_dead_letters", "Messages rejected, by reason", ["reason"], registry=r
        )
        self.lag = Histogram(
            "envpatrol_ingest_reading_lag_seconds",
            "From a reading's time to the commit that stored it",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.passes = Counter(
            "envpatrol_ingest_passes_written", "Passes (re)computed around new readings", registry=r
        )
        self.db_errors = Counter(
            "envpatrol_ingest_database_errors", "Failed batch attempts (retried)", registry=r
        )
        self.connected = Gauge(
            "envpatrol_ingest_broker_connected", "1 while connected to the broker", registry=r
        )
