"""What broker messages become in the live feed, and how one broker session serves every viewer
(no broker here: an in-memory message source stands in for it)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.live import (
    Backoff,
    BrokerLostError,
    BrokerMessage,
    LiveEvent,
    LiveHub,
    LiveStats,
    ViewerQueue,
    events_from,
    feed,
)
from api.settings import ApiSettings
from edge.mqtt import MqttSettings
from edge.topics import TopicError, Topics
from edge.wire import Position, Reading, WireError, encode_message

TOPICS = Topics("envpatrol")
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def reading(seq: int, *, valid: bool = True, seconds: int = 0) -> Reading:
    return Reading(
        vehicle="patrol-01",
        seq=seq,
        time=T0 + timedelta(seconds=seconds),
        time_source="gnss",
        position=Position(39.893 + seq * 1e-4, 116.462, valid),
        values={"pm25": 40.0 + seq},
        profile="default-multi",
    )


def test_the_newest_fixed_reading_becomes_a_position() -> None:
    payload = encode_message(
        "patrol-01",
        [reading(1), reading(2, seconds=10), reading(3, valid=False, seconds=20)],
    )
    [event] = events_from(TOPICS, "envpatrol/v1/patrol-01/readings", payload)
    assert event.kind == "position"
    assert event.data["seq"] == 2
    assert event.data["lat"] == pytest.approx(39.8932)
    assert event.data["time"] == "2026-05-01T08:00:10.000Z"
    assert event.data["values"] == {"pm25": 42.0}
    wire = event.encode()
    assert wire.startswith(b"event: position\ndata: {")
    assert wire.endswith(b"}\n\n")
    assert wire.count(b"\n") == 3


def test_readings_without_a_fix_give_nothing() -> None:
    payload = encode_message("patrol-01", [reading(1, valid=False)])
    assert events_from(TOPICS, "envpatrol/v1/patrol-01/readings", payload) == []


def test_status_messages_become_status_events() -> None:
    payload = json.dumps({"state": "offline", "time": "2026-05-01T08:00:00Z"}).encode()
    assert events_from(TOPICS, "envpatrol/v1/patrol-01/status", payload) == [
        LiveEvent(
            "status", {"vehicle": "patrol-01", "state": "offline", "time": "2026-05-01T08:00:00Z"}
        )
    ]


def test_health_messages_are_not_part_of_the_feed() -> None:
    assert events_from(TOPICS, "envpatrol/v1/patrol-01/health", b"{}") == []


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        ("envpatrol/v1/patrol-01/readings", b"not json", WireError),
        ("envpatrol/v1/patrol-01/status", b"[]", ValueError),
        ("envpatrol/v1/patrol-01/status", b"{]", ValueError),
        ("other/v1/patrol-01/status", b"{}", TopicError),
        ("envpatrol/v1/patrol-02/readings", encode_message("patrol-01", [reading(1)]), ValueError),
    ],
)
def test_bad_messages_raise_so_the_feed_can_skip_and_count_them(
    topic: str, payload: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        events_from(TOPICS, topic, payload)


# --- the hub: one broker session fanned out to every viewer ------------------------------------

FILTERS = ["envpatrol/v1/+/readings", "envpatrol/v1/+/status"]
READINGS = "envpatrol/v1/patrol-01/readings"
STATUS = "envpatrol/v1/patrol-01/status"
DEADLINE_S = 5.0


class FakeBroker:
    """A MessageSource in memory: `publish` feeds the open session, `drop` ends it as a lost
    connection, `refuse` makes the next sessions fail to connect."""

    def __init__(self) -> None:
        self.sessions = 0
        self.open = False
        self.refuse: str | None = None
        self.filters: list[str] = []
        self._inbox: asyncio.Queue[BrokerMessage | BrokerLostError] = asyncio.Queue()

    @asynccontextmanager
    async def session(self, filters: Sequence[str]) -> AsyncIterator[AsyncIterator[BrokerMessage]]:
        await asyncio.sleep(0)  # connecting takes a turn of the loop, as a real one does
        if self.refuse is not None:
            raise BrokerLostError("fake", self.refuse)
        self.sessions += 1
        self.filters = list(filters)
        self._inbox = asyncio.Queue()
        self.open = True
        try:
            yield self._messages(self._inbox)
        finally:
            self.open = False

    async def _messages(
        self, inbox: asyncio.Queue[BrokerMessage | BrokerLostError]
    ) -> AsyncIterator[BrokerMessage]:
        while True:
            item = await inbox.get()
            if isinstance(item, BrokerLostError):
                raise item
            yield item

    def publish(self, topic: str, payload: bytes) -> None:
        assert self.open, "no session to publish to"
        self._inbox.put_nowait((topic, payload))

    def drop(self, problem: str = "connection reset") -> None:
        self._inbox.put_nowait(BrokerLostError("fake", problem))


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def hub_for(broker: FakeBroker, **options: Any) -> LiveHub:
    return LiveHub(broker, TOPICS, **options)


def position(seq: int) -> bytes:
    return encode_message("patrol-01", [reading(seq, seconds=seq)])


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {DEADLINE_S}s waiting for {what}")
        await asyncio.sleep(0.001)


async def take(queue: ViewerQueue) -> LiveEvent:
    event = await queue.next(DEADLINE_S)
    assert event is not None, "no event within the deadline"
    return event


async def frames(stream: AsyncIterator[bytes], count: int) -> list[bytes]:
    return [await asyncio.wait_for(anext(stream), DEADLINE_S) for _ in range(count)]


def test_three_viewers_share_one_session_and_see_the_same_positions() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        hub = hub_for(broker)
        streams = [feed(hub) for _ in range(3)]
        firsts = await asyncio.gather(*(frames(s, 1) for s in streams))
        assert all(f[0].startswith(b"event: ready\n") for f in firsts)
        assert broker.sessions == 1
        assert broker.filters == FILTERS
        assert hub.viewers == 3
        for seq in (1, 2, 3):
            broker.publish(READINGS, position(seq))
        seen = await asyncio.gather(*(frames(s, 3) for s in streams))
        assert seen[0] == seen[1] == seen[2]
        assert [orjson.loads(f.split(b"data: ")[1])["seq"] for f in seen[0]] == [1, 2, 3]
        assert hub.stats.delivered == 12
        for stream in streams:
            await stream.aclose()  # the HTTP client went away
        assert hub.viewers == 0
        await hub.close()

    asyncio.run(scenario())


def test_a_viewer_joining_a_connected_hub_gets_ready_at_once() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        hub = hub_for(broker)
        first = hub.join()
        assert (await take(first)).kind == "ready"
        second = hub.join()
        assert second.pending() == [LiveEvent("ready", {"topics": FILTERS})]
        assert broker.sessions == 1
        await hub.close()
        assert first.closed
        assert second.closed

    asyncio.run(scenario())


def test_a_slow_viewer_loses_its_oldest_positions_and_holds_up_no_one() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        hub = hub_for(broker, capacity=4)
        slow, fast = hub.join(), hub.join()
        assert (await take(fast)).kind == "ready"
        broker.publish(STATUS, b'{"state": "online"}')
        assert (await take(fast)).kind == "status"
        received = []
        for seq in range(1, 21):
            broker.publish(READINGS, position(seq))
            received.append((await take(fast)).data["seq"])
        assert received == list(range(1, 21))
        kept = slow.pending()
        assert [e.kind for e in kept] == ["ready", "status", "position", "position"]
        assert [e.data["seq"] for e in kept[2:]] == [19, 20]
        assert slow.dropped == hub.stats.dropped == 18
        assert fast.dropped == 0
        await hub.close()

    asyncio.run(scenario())


def test_messages_that_do_not_decode_are_skipped_and_counted() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        hub = hub_for(broker)
        viewer = hub.join()
        assert (await take(viewer)).kind == "ready"
        broker.publish(READINGS, b"not json")
        broker.publish("elsewhere/v1/patrol-01/readings", position(1))
        broker.publish(STATUS, b"[]")
        broker.publish(READINGS, position(2))
        event = await take(viewer)
        assert (event.kind, event.data["seq"]) == ("position", 2)
        assert hub.stats.skipped == 3
        await hub.close()

    asyncio.run(scenario())


def test_a_lost_broker_ends_every_stream_with_an_error_and_is_retried_after_a_backoff() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        clock = FakeClock()
        hub = hub_for(broker, clock=clock, backoff=Backoff(first_s=1.0, max_s=4.0))
        streams = [feed(hub) for _ in range(3)]
        await asyncio.gather(*(frames(s, 1) for s in streams))
        broker.drop("connection reset by peer")
        ends = await asyncio.gather(*(frames(s, 1) for s in streams))
        for [frame] in ends:
            assert frame.startswith(b"event: error\n")
            assert b"the broker cannot be reached: connection reset by peer" in frame
        for stream in streams:  # and then the stream ends
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
        assert hub.viewers == 0

        # Within the backoff a viewer is told at once, and the broker is not asked.
        broker.refuse = "connection refused"
        early = hub.join()
        assert early.closed
        assert not early.finished  # its error is still to be read
        assert (await take(early)).kind == "error"
        assert broker.sessions == 1

        # Past it, one attempt for every viewer waiting; failing, the backoff doubles.
        clock.now += 1.0
        waiting = [hub.join() for _ in range(3)]
        for queue in waiting:
            event = await take(queue)
            assert (event.kind, queue.finished) == ("error", True)
            assert "connection refused" in event.data["detail"]
        clock.now += 1.5
        assert (await take(hub.join())).kind == "error"  # 2 s this time

        # Back: a new session, `ready` again, and the backoff starts over.
        broker.refuse = None
        clock.now += 0.5
        back = hub.join()
        assert (await take(back)).kind == "ready"
        assert broker.sessions == 2
        broker.drop()
        assert (await take(back)).kind == "error"
        clock.now += 0.9
        assert (await take(hub.join())).kind == "error"
        clock.now += 0.1
        assert (await take(hub.join())).kind == "ready"
        assert broker.sessions == 3
        assert hub.stats.connections == 3
        await hub.close()

    asyncio.run(scenario())


def test_the_hub_disconnects_when_no_one_watched_for_a_while() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        hub = hub_for(broker, idle_s=0.2)
        first = hub.join()
        assert (await take(first)).kind == "ready"
        hub.leave(first)
        second = hub.join()  # within idle_s: the same session
        assert (await take(second)).kind == "ready"
        assert broker.sessions == 1
        hub.leave(second)
        await until(lambda: not broker.open, "the idle session to close")
        assert hub.connected is False
        third = hub.join()
        assert (await take(third)).kind == "ready"
        assert broker.sessions == 2
        await hub.close()
        assert broker.open is False

    asyncio.run(scenario())


def test_an_idle_stream_gets_heartbeats() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        hub = hub_for(broker)
        stream = feed(hub, heartbeat_s=0.01)
        [ready, beat] = await frames(stream, 2)
        assert ready.startswith(b"event: ready\n")
        assert beat == b": heartbeat\n\n"
        await stream.aclose()
        await hub.close()

    asyncio.run(scenario())


def test_a_closed_hub_ends_new_streams_at_once() -> None:
    async def scenario() -> None:
        hub = hub_for(FakeBroker())
        await hub.close()
        assert [frame async for frame in feed(hub)] == []

    asyncio.run(scenario())


def test_the_backoff_doubles_up_to_its_ceiling_and_starts_over() -> None:
    backoff = Backoff(first_s=1.0, max_s=5.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 1.0


KINDS = st.sampled_from(["position", "position", "position", "status", "hotspot"])


@given(kinds=st.lists(KINDS, max_size=60), capacity=st.integers(1, 8))
def test_a_viewer_queue_stays_bounded_and_loses_positions_first(
    kinds: list[str], capacity: int
) -> None:
    stats = LiveStats()
    queue = ViewerQueue(capacity, stats)
    events = [LiveEvent(kind, {"n": n}) for n, kind in enumerate(kinds)]
    for event in events:
        queue.put(event)
        assert len(queue) <= capacity
    kept = queue.pending()
    assert len(kept) + queue.dropped == len(events) == len(kept) + stats.dropped
    order = [e.data["n"] for e in kept]
    assert order == sorted(order)  # nothing reordered
    if kept:
        assert kept[-1] == events[-1] or events[-1].kind == "position"
    others = [e for e in events if e.kind != "position"]
    if len(others) <= capacity:  # room for them all: no state change or hotspot was lost
        assert [e for e in kept if e.kind != "position"] == others


def test_a_closed_queue_keeps_its_last_event_and_takes_no_more() -> None:
    queue = ViewerQueue(1, LiveStats())
    queue.put(LiveEvent("position", {"n": 1}))
    queue.close(LiveEvent("error", {"detail": "gone"}))
    queue.put(LiveEvent("position", {"n": 2}))
    assert [e.kind for e in queue.pending()] == ["position", "error"]
    assert queue.closed
    assert not queue.finished


# --- the app: one hub per running app -----------------------------------------------------------

NOWHERE = "postgresql://nobody@127.0.0.1:9/none"  # never connected to by these tests


def test_the_app_holds_one_hub_while_it_runs_and_closes_it_on_the_way_out() -> None:
    settings = ApiSettings(database_url=NOWHERE, mqtt=MqttSettings(port=9, topic_root="envpatrol"))
    app = create_app(settings)
    assert app.state.live_hub is None
    with TestClient(app):
        hub = app.state.live_hub
        assert isinstance(hub, LiveHub)
        assert hub.stats is app.state.live_stats
        assert hub.filters == FILTERS
    assert app.state.live_hub is None
    assert hub.join().finished  # closed: a stream that would still come ends at once


@pytest.mark.parametrize(
    ("mqtt", "detail"),
    [(None, "no broker configured"), (MqttSettings(port=9), "not running")],
)
def test_without_a_broker_or_a_running_hub_the_feed_is_a_503(
    mqtt: MqttSettings | None, detail: str
) -> None:
    app = create_app(ApiSettings(database_url=NOWHERE, mqtt=mqtt))
    response = TestClient(app).get("/v1/live")  # no lifespan: no hub
    assert response.status_code == 503
    assert response.json()["type"].endswith("live-feed-off")
    assert detail in response.json()["detail"]
