"""What Mosquitto 2.0 does with a shared subscription's messages when a member vanishes.

Two members share `$share/g/t/#`; member A takes at most 5 messages at a time (Receive Maximum)
and never acknowledges them, member B acknowledges everything. 40 messages are published (A: 5
in flight, 15 queued behind them), then A's connection drops without a DISCONNECT, and 40 more
are published. What becomes of A's share depends on its session expiry and on how it returns;
the ingest's design for lost workers rests on these outcomes (docs/reliability.md, "Ingest on
several hosts"). A marker on a topic B alone subscribes to says when B has everything routed to
it before the marker: a message queues behind every earlier one for the same client.
"""

from __future__ import annotations

import socket
import threading
import uuid
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.integration.ingest_fixtures import PrivateBroker, needs_mosquitto, private_broker
from tests.services import wait_until

pytestmark = [pytest.mark.integration, needs_mosquitto]
__all__ = ["private_broker"]  # a fixture used by name below

SHARED = "$share/g/t/#"
A_GONE = "mark/a-gone"


class Member:
    """A raw MQTT 5 client recording what it receives (topic, payload, DUP flag)."""

    def __init__(
        self,
        broker: PrivateBroker,
        client_id: str,
        *,
        expiry: int,
        receive_maximum: int = 100,
        acknowledge: bool = True,
        clean_start: bool = False,
        will: str | None = None,
    ) -> None:
        self.received: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.session_present: bool | None = None
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        self.client.manual_ack_set(not acknowledge)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if expiry:
            props.SessionExpiryInterval = expiry
        props.ReceiveMaximum = receive_maximum
        if will is not None:
            self.client.will_set(will, "", qos=1)
        self.client.connect("127.0.0.1", broker.port, 60, clean_start=clean_start, properties=props)
        self.client.loop_start()
        wait_until(lambda: self.session_present is not None, 10, f"{client_id} to connect")

    def _on_connect(self, _c: Any, _u: Any, flags: Any, _reason: Any, _p: Any) -> None:
        self.session_present = bool(flags.session_present)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, message.payload.decode(), bool(message.dup)))

    def numbers(self) -> set[int]:
        with self._lock:
            return {int(p) for t, p, _ in self.received if t.startswith("t/")}

    def count(self) -> int:
        return len(self.numbers())

    def has(self, topic: str) -> bool:
        with self._lock:
            return any(t == topic for t, _, _ in self.received)

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        assert done.wait(10)

    def vanish(self) -> None:
        """The connection drops without a DISCONNECT (a crash, or the broker giving up on a
        silent link): the broker applies the session expiry."""
        self.client.loop_stop()
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self, props: Properties | None = None) -> None:
        self.client.disconnect(properties=props)
        self.client.loop_stop()


class Setup:
    def __init__(self, broker: PrivateBroker, expiry: int) -> None:
        self.broker = broker
        # A's will tells B (subscribed to mark/#) when the broker has seen A's connection end.
        self.a = Member(
            broker, "A", expiry=expiry, receive_maximum=5, acknowledge=False, will=A_GONE
        )
        self.b = Member(broker, "B", expiry=3600)
        self.a.subscribe(SHARED)
        self.b.subscribe(SHARED, "mark/#")
        self.publisher = Member(broker, "P", expiry=0)
        self.published = 0

    def publish(self, n: int) -> None:
        for i in range(self.published, self.published + n):
            self.publisher.client.publish(f"t/{i}", str(i), qos=1)
        self.published += n

    def b_caught_up(self) -> None:
        """Until B has everything routed to it so far."""
        mark = f"mark/{uuid.uuid4().hex}"
        self.publisher.client.publish(mark, "", qos=1)
        wait_until(lambda: self.b.has(mark), 10, "B to receive the marker")

    def a_vanishes(self) -> None:
        """A's connection ends without a word, and the broker has seen it end (what is
        published after that is dealt without A's connection)."""
        self.a.vanish()
        wait_until(lambda: self.b.has(A_GONE), 10, "the broker to see A's connection end")

    def strand_a(self) -> None:
        """40 published (A holds 5 in flight), A's connection gone without a word, 40 more."""
        self.publish(40)
        wait_until(lambda: self.a.count() == 5, 10, "A's 5 in flight")
        self.a_vanishes()
        self.publish(40)
        self.b_caught_up()

    def close(self) -> None:
        for member in (self.b, self.publisher):
            member.close()


def test_a_vanished_member_with_a_session_keeps_its_share_until_it_resumes(
    private_broker: PrivateBroker,
) -> None:
    s = Setup(private_broker, expiry=3600)
    try:
        s.publish(40)
        wait_until(lambda: s.a.count() == 5, 10, "A's 5 in flight")
        s.b_caught_up()
        assert s.b.count() == 20  # strict round robin: A's other 15 wait queued
        s.a_vanishes()
        s.publish(40)
        s.b_caught_up()
        assert s.b.count() == 40  # the absent member is still dealt every other message
        back = Member(private_broker, "A", expiry=3600)
        wait_until(lambda: back.count() == 40, 10, "A's share on its return")
        assert back.session_present
        with back._lock:
            dups = sum(1 for _, _, dup in back.received if dup)
        assert dups == 5  # the in-flight ones, sent again
        assert back.numbers() | s.b.numbers() == set(range(80))
        back.close()
    finally:
        s.close()


def test_a_member_returning_with_clean_start_discards_its_share(
    private_broker: PrivateBroker,
) -> None:
    s = Setup(private_broker, expiry=3600)
    try:
        s.strand_a()
        back = Member(private_broker, "A", expiry=3600, clean_start=True)
        back.subscribe(SHARED)
        s.b_caught_up()
        assert not back.session_present
        assert len(set(range(80)) - back.numbers() - s.b.numbers()) == 40
        back.close()
    finally:
        s.close()


def test_a_member_without_session_expiry_loses_what_was_in_flight_and_queued(
    private_broker: PrivateBroker,
) -> None:
    s = Setup(private_broker, expiry=0)
    try:
        s.publish(40)
        wait_until(lambda: s.a.count() == 5, 10, "A's 5 in flight")
        s.b_caught_up()
        s.a_vanishes()
        wait_until(lambda: s.b.count() == 20, 10, "B's share")
        # The session ended with the connection: A is no longer a member, B gets everything.
        s.publish(40)
        s.b_caught_up()
        assert s.b.count() == 60
        back = Member(private_broker, "A", expiry=0)
        s.b_caught_up()
        assert not back.session_present
        assert back.count() == 0
        assert len(set(range(80)) - s.b.numbers()) == 20  # 5 in flight, 15 queued: gone
        back.close()
    finally:
        s.close()


def test_a_session_that_expires_takes_its_share_with_it(private_broker: PrivateBroker) -> None:
    s = Setup(private_broker, expiry=2)
    try:
        s.strand_a()
        assert s.b.count() == 40

        def expired() -> bool:  # once the session is gone, B is dealt every message
            before = s.b.count()
            s.publish(2)
            s.b_caught_up()
            return s.b.count() == before + 2

        wait_until(expired, 15, "A's session to expire", every=0.5)
        back = Member(private_broker, "A", expiry=2)
        s.b_caught_up()
        assert not back.session_present
        assert back.count() == 0
        lost = set(range(s.published)) - s.b.numbers()
        assert len(lost) >= 40  # 5 in flight, 15 queued, 20 dealt while it was away
        back.close()
    finally:
        s.close()


def test_an_adopter_drains_a_vanished_members_session_and_removes_it(
    private_broker: PrivateBroker,
) -> None:
    """What the ingest does for a lost worker (`IngestService.adopt`), with raw clients."""
    s = Setup(private_broker, expiry=3600)
    try:
        s.strand_a()
        adopter = Member(private_broker, "A", expiry=3600)
        assert adopter.session_present
        done = threading.Event()
        adopter.client.on_unsubscribe = lambda *_: done.set()
        adopter.client.unsubscribe(SHARED)  # no new messages for the session
        assert done.wait(10)
        adopter.subscribe("drain/A")
        adopter.client.publish("drain/A", "marker", qos=1)
        s.publish(20)  # all to B now
        wait_until(lambda: adopter.has("drain/A"), 10, "the marker")
        with adopter._lock:
            assert adopter.received[-1][0] == "drain/A"  # after everything the session held
        assert adopter.count() == 40
        props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0  # the session is removed
        adopter.close(props)
        s.publish(20)
        s.b_caught_up()
        assert s.b.count() == 80  # 20 + 20 before, 20 + 20 after the adoption
        back = Member(private_broker, "A", expiry=3600)
        assert not back.session_present
        assert adopter.numbers() | s.b.numbers() == set(range(s.published))
        back.close()
    finally:
        s.close()
