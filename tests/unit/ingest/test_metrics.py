"""The ingest's bulk histogram exposes exactly what a Prometheus `Histogram` fed the same values
one at a time exposes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ingest.metrics import BulkHistogram

BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 86400)


def exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if not line.startswith("#") and "_created" not in line]


@given(
    st.lists(
        st.lists(
            st.one_of(
                st.sampled_from([float(b) for b in BUCKETS]),  # on a bound: counted in it (le)
                st.floats(min_value=0, max_value=10 * 86400, allow_nan=False),
            ),
            max_size=30,
        ),
        max_size=5,
    )
)
def test_bulk_observations_equal_single_ones(batches: list[list[float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram("lag_seconds", "lag", BUCKETS, ours)
    single = Histogram("lag_seconds", "lag", buckets=BUCKETS, registry=theirs)
    for batch in batches:
        bulk.observe_many(batch)
        for value in batch:
            single.observe(value)
    mine, reference = exposition(ours), exposition(theirs)
    assert [line.rsplit(" ", 1)[0] for line in mine] == [
        line.rsplit(" ", 1)[0] for line in reference
    ]
    for a, b in zip(mine, reference, strict=True):
        assert float(a.rsplit(" ", 1)[1]) == pytest.approx(
            float(b.rsplit(" ", 1)[1]), rel=1e-9, abs=1e-9
        )
