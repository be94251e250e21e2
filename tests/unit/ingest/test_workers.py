"""The share group's bookkeeping: status documents, and who adopts a lost worker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.workers import (
    STATES,
    Workers,
    WorkerStatus,
    drain_topic,
    parse_status,
    status_topic,
    worker_of,
)

names = st.text(st.sampled_from("abcdefgh-0123456789"), min_size=1, max_size=12)


@given(names, st.sampled_from(STATES), st.text(max_size=20), st.text(max_size=12))
def test_a_status_reads_back_as_written(worker: str, state: str, group: str, by: str) -> None:
    status = WorkerStatus(worker, state, group, by)  # type: ignore[arg-type]
    assert parse_status(worker, status.encode()) == status


@given(st.binary(max_size=200))
def test_anything_else_is_no_status(payload: bytes) -> None:
    status = parse_status("ingest-1", payload)
    assert status is None or status.worker == "ingest-1"


def test_statuses_of_another_worker_schema_or_state_are_ignored() -> None:
    good = WorkerStatus("ingest-1", "offline", "ingest").encode()
    assert parse_status("ingest-2", good) is None  # published on another worker's topic
    assert parse_status("ingest-1", good.replace(b'"offline"', b'"gone"')) is None
    assert (
        parse_status("ingest-1", good.replace(b'"schema_version":1', b'"schema_version":2')) is None
    )
    assert parse_status("ingest-1", b"") is None  # a cleared retained message


@given(names)
def test_topics_name_their_worker(worker: str) -> None:
    assert worker_of("envpatrol", status_topic("envpatrol", worker)) == worker
    assert worker_of("envpatrol", drain_topic("envpatrol", worker)) is None
    assert worker_of("envpatrol", f"envpatrol/v1/{worker}/status") is None


@given(st.dictionaries(names, st.sampled_from(STATES), min_size=1, max_size=8))
def test_every_lost_worker_has_exactly_one_adopter_among_those_online(
    states: dict[str, str],
) -> None:
    """All workers see the same statuses; each lost one is adopted by one online worker."""
    group = "ingest"
    online = [w for w, s in states.items() if s == "online"]
    views = {}
    for me in online:
        view = Workers(me, group)
        for worker, state in states.items():
            view.observe(WorkerStatus(worker, state, group), now=0.0)  # type: ignore[arg-type]
        views[me] = view
    for lost in (w for w, s in states.items() if s == "offline"):
        adopters = [me for me, view in views.items() if lost in view.to_adopt(10.0, 5.0)]
        assert len(adopters) == (1 if online else 0)


def test_a_lost_worker_is_adopted_after_the_grace_period_unless_it_returns() -> None:
    view = Workers("ingest-2", "ingest")
    view.observe(WorkerStatus("ingest-1", "online", "ingest"), now=0.0)
    view.observe(WorkerStatus("ingest-3", "online", "ingest"), now=0.0)
    view.observe(WorkerStatus("ingest-1", "offline", "ingest"), now=10.0)
    assert view.to_adopt(12.0, grace_s=5.0) == []
    assert view.to_adopt(15.0, grace_s=5.0) == ["ingest-1"]
    view.observe(WorkerStatus("ingest-1", "online", "ingest"), now=16.0)  # back in time
    assert view.to_adopt(30.0, grace_s=5.0) == []
    # ingest-3's adopter is the first online after it, going round: ingest-1.
    view.observe(WorkerStatus("ingest-3", "offline", "ingest"), now=30.0)
    assert view.to_adopt(40.0, grace_s=5.0) == []
    assert view.adopter_of("ingest-3") == "ingest-1"


def test_an_unfinished_adoption_waits_another_grace_period() -> None:
    view = Workers("ingest-2", "ingest")
    view.observe(WorkerStatus("ingest-1", "offline", "ingest"), now=0.0)
    assert view.to_adopt(5.0, grace_s=5.0) == ["ingest-1"]
    view.postpone("ingest-1", now=6.0)
    assert view.to_adopt(10.0, grace_s=5.0) == []
    assert view.to_adopt(11.0, grace_s=5.0) == ["ingest-1"]
    view.observe(WorkerStatus("ingest-1", "adopted", "ingest", "ingest-2"), now=12.0)
    assert view.to_adopt(99.0, grace_s=5.0) == []


def test_other_groups_and_itself_are_not_its_business() -> None:
    view = Workers("ingest-2", "ingest")
    view.observe(WorkerStatus("other-1", "offline", "other"), now=0.0)
    view.observe(WorkerStatus("ingest-2", "offline", "ingest"), now=0.0)  # its own, old
    assert view.to_adopt(99.0, grace_s=0.0) == []
