"""The ingest client's receive path against paho's own: `lean_publish` decodes exactly what
paho's PUBLISH decoder decodes, or hands the packet back to it; the read buffer returns the
stream's bytes unchanged however it is asked for them."""

from __future__ import annotations

import struct

import paho.mqtt.client as paho
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import (
    CallbackAPIVersion,
    MQTTErrorCode,
    MQTTProtocolVersion,
    _ConnectionState,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_client import (
    RECEIVED_OVERHEAD,
    IngestClient,
    Received,
    _ReadBuffer,
    droppable,
    footprint,
    lean_publish,
    pubacks,
    split_publishes,
)

V5 = MQTTProtocolVersion.MQTTv5
# What MQTT allows in a UTF-8 string: no NUL, no surrogates.
PROPERTY_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8
)


def publish_packet(
    topic: bytes, qos: int, mid: int, payload: bytes, props: bytes, *, dup: bool, retain: bool
) -> tuple[int, bytes]:
    header = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    return header, body + props + payload


def paho_decode(header: int, packet: bytes) -> tuple[bytes, int, bytes, bool]:
    """paho's decoding: topic, mid, payload, and whether the packet had properties."""
    result = _packet.decode_publish(header, packet, V5)
    assert result.properties is not None
    has_props = bool(result.properties.json())  # type: ignore[no-untyped-call]
    return result.topic, result.mid, bytes(result.payload), has_props


@given(
    topic=st.binary(max_size=300),
    qos=st.integers(0, 2),
    mid=st.integers(1, 65535),
    payload=st.binary(max_size=2000),
    user=st.lists(st.tuples(PROPERTY_TEXT, PROPERTY_TEXT), max_size=2),
    dup=st.booleans(),
    retain=st.booleans(),
)
def test_lean_publish_agrees_with_paho(
    topic: bytes,
    qos: int,
    mid: int,
    payload: bytes,
    user: list[tuple[str, str]],
    dup: bool,
    retain: bool,
) -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if user:
        props.UserProperty = user
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    header, packet = publish_packet(topic, qos, mid, payload, packed, dup=dup, retain=retain)
    ours = lean_publish(header, packet)
    theirs = paho_decode(header, packet)
    if user or qos == 2:
        assert ours is None  # properties or QoS 2: paho's decoder
    else:
        assert ours is not None
        assert ours == theirs[:3]
        assert not theirs[3]


@given(header=st.integers(0x30, 0x3F), packet=st.binary(max_size=64))
def test_lean_publish_on_arbitrary_bytes(header: int, packet: bytes) -> None:
    """Whatever it accepts, paho decodes the same way; what it declines is paho's to judge."""
    ours = lean_publish(header, packet)
    if ours is None:
        return
    topic, mid, payload, has_props = paho_decode(header, packet)
    assert not has_props
    assert ours == (topic, mid, payload)


def test_lean_publish_declines_truncated_packets() -> None:
    assert lean_publish(0x32, b"") is None
    assert lean_publish(0x32, b"\x00\x03abc\x00") is None  # no room for the packet id
    assert lean_publish(0x30, b"\x00\x03abc") is None  # no properties length
    assert lean_publish(0x30, b"\x00\x03abc\x00") == (b"abc", 0, b"")


def test_pubacks_back_to_back() -> None:
    assert pubacks([]) == b""
    assert pubacks([1, 0x1234]) == b"\x40\x02\x00\x01\x40\x02\x12\x34"


class ChunkedStream:
    """A socket stand-in that hands out a byte stream in fixed chunks, then end of stream."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.pos = data, chunk, 0
        self.calls = 0

    def recv(self, bufsize: int) -> bytes:
        self.calls += 1
        n = min(bufsize, self.chunk)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def fileno(self) -> int:
        return 42

    def close(self) -> None:
        self.pos = len(self.data)


@given(
    data=st.binary(min_size=1, max_size=5000),
    chunk=st.integers(1, 3000),
    asks=st.lists(st.integers(1, 700), min_size=1, max_size=50),
)
def test_read_buffer_returns_the_stream_unchanged(data: bytes, chunk: int, asks: list[int]) -> None:
    stream = ChunkedStream(data, chunk)
    buffered = _ReadBuffer(stream)
    out = b""
    i = 0
    while True:
        ask = asks[i % len(asks)]
        i += 1
        got = buffered.recv(ask)
        assert len(got) <= ask
        if not got:
            break
        out += got
    assert out == data
    assert buffered.pending() == 0
    assert buffered.fileno() == 42  # everything else is the socket's


def test_read_buffer_reports_what_it_holds() -> None:
    buffered = _ReadBuffer(ChunkedStream(b"abcdef", 100))
    assert buffered.recv(1) == b"a"
    assert buffered.pending() == 5
    assert buffered.recv(10) == b"bcdef"
    assert buffered.pending() == 0


def delivered(client: paho.Client, header: int, packet: bytes) -> paho.MQTTMessage:
    """The message `client` hands to on_message for this PUBLISH (no socket: the packet is put
    where paho's reader leaves it)."""
    got: list[paho.MQTTMessage] = []
    client.on_message = lambda _c, _u, message: got.append(message)
    client.manual_ack_set(True)  # nothing to send back
    client._in_packet = {**client._in_packet, "command": header, "packet": bytearray(packet)}
    client._handle_publish()
    assert len(got) == 1
    return got[0]


@given(
    topic=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#"),
        min_size=1,
        max_size=40,
    ),
    qos=st.integers(0, 1),
    mid=st.integers(1, 65535),
    payload=st.binary(max_size=500),
    dup=st.booleans(),
    retain=st.booleans(),
)
def test_ingest_client_delivers_what_paho_delivers(
    topic: str, qos: int, mid: int, payload: bytes, dup: bool, retain: bool
) -> None:
    header, packet = publish_packet(
        topic.encode(), qos, mid, payload, b"\x00", dup=dup, retain=retain
    )
    ours = delivered(
        IngestClient(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5), header, packet
    )
    theirs = delivered(
        paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5), header, packet
    )
    for field in ("topic", "payload", "mid", "qos", "dup", "retain", "state"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.properties is None  # none were sent; paho gives an empty Properties
    assert ours.timestamp > 0


lean_packets = st.tuples(
    st.binary(max_size=60),  # topic
    st.integers(0, 1),  # QoS
    st.integers(1, 65535),  # packet id
    st.binary(max_size=300),  # payload
    st.booleans(),  # dup
    st.booleans(),  # retain
)


def framed(header: int, packet: bytes) -> bytes:
    """A packet with its fixed header: the command byte and the remaining length."""
    length, out = len(packet), bytearray([header])
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + packet


@given(
    packets=st.lists(lean_packets, max_size=12),
    tail=st.sampled_from(["none", "props", "qos2", "pingresp", "cut"]),
    cut=st.integers(1, 400),
)
def test_split_publishes_takes_the_lean_packets_in_front(
    packets: list[tuple[bytes, int, int, bytes, bool, bool]], tail: str, cut: int
) -> None:
    """Every complete lean PUBLISH in front, decoded as `lean_publish` (itself checked against
    paho) decodes it, and it stops where paho must take over: at a packet with properties, at
    QoS 2, at another kind of packet, or at one not yet complete."""
    stream, expected = b"", []
    for topic, qos, mid, payload, dup, retain in packets:
        header, packet = publish_packet(topic, qos, mid, payload, b"\x00", dup=dup, retain=retain)
        stream += framed(header, packet)
        expected.append((header, topic, mid if qos else 0, payload))
    stop = len(stream)
    if tail == "props":
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("k", "v")]
        stream += framed(*publish_packet(b"t", 1, 7, b"x", props.pack(), dup=False, retain=False))  # type: ignore[no-untyped-call]
    elif tail == "qos2":
        stream += framed(*publish_packet(b"t", 2, 7, b"x", b"\x00", dup=False, retain=False))
    elif tail == "pingresp":
        stream += b"\xd0\x00"
    elif tail == "cut":
        whole = framed(
            *publish_packet(b"topic", 1, 9, b"y" * 300, b"\x00", dup=False, retain=False)
        )
        stream += whole[: cut % len(whole)]
    found, at = split_publishes(b"junk" + stream, 4)
    assert found == expected
    assert at == 4 + stop


def test_split_publishes_leaves_malformed_packets_to_paho() -> None:
    # remaining length of five bytes, topic longer than the packet, no room for the packet id
    for bad in (b"\x32\xff\xff\xff\xff\x01", b"\x30\x03\x00\x09a", b"\x32\x03\x00\x01a"):
        assert split_publishes(bad, 0) == ([], 0)


def test_a_turn_of_the_loop_delivers_every_buffered_publish_in_order() -> None:
    """One `loop_read` hands over everything complete in the read buffer as one list, in order,
    with the connection it came on; a packet with properties still goes to on_message."""
    client = IngestClient(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.manual_ack_set(True)
    client.connection = 3
    lists: list[list[Received]] = []
    client.on_received = lists.append
    messages: list[paho.MQTTMessage] = []
    client.on_message = lambda _c, _u, m: messages.append(m)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = [("k", "v")]
    stream = b"".join(
        framed(
            *publish_packet(
                f"t/{i}".encode(), 1, i + 1, b"p%d" % i, b"\x00", dup=False, retain=False
            )
        )
        for i in range(50)
    ) + framed(*publish_packet(b"t/props", 1, 99, b"q", props.pack(), dup=False, retain=False))  # type: ignore[no-untyped-call]
    client._sock = _ReadBuffer(ChunkedStream(stream, len(stream)))
    while client._sock.pending() or not messages:
        client.loop_read()
    received = [r for chunk in lists for r in chunk]
    assert received == [Received(3, f"t/{i}", i + 1, 1, b"p%d" % i) for i in range(50)]
    assert len(lists) <= 2  # the first packet through paho's reader, the rest in one list
    assert [(m.topic, m.mid) for m in messages] == [("t/props", 99)]


class Broker(ChunkedStream):
    """The stream as a broker's socket that also takes what the client writes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data, len(data))
        self.written = b""

    def send(self, data: bytes) -> int:
        self.written += bytes(data)
        return len(data)


def connected_client(stream: bytes) -> tuple[IngestClient, Broker, list[Received]]:
    client = IngestClient(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.manual_ack_set(True)
    received: list[Received] = []
    client.on_received = received.extend
    broker = Broker(stream)
    client._sock = _ReadBuffer(broker)
    client._state = _ConnectionState.MQTT_CS_CONNECTED
    return client, broker, received


def qos1_stream(count: int) -> bytes:
    return b"".join(
        framed(*publish_packet(b"t", 1, i + 1, b"p", b"\x00", dup=False, retain=False))
        for i in range(count)
    )


def test_no_room_leaves_the_socket_unread_and_the_connection_alive() -> None:
    """While the inbox has no room the socket is not read, and paho's keep-alive neither
    expects the PINGRESP queued behind the unread messages nor closes the connection; it still
    sends PINGREQ, so the broker's keep-alive is met."""
    client, broker, received = connected_client(qos1_stream(20))
    room = [False]
    client.wait_for_room = lambda _timeout: room[0]
    client._keepalive = 1
    long_ago = paho.time_func() - 100
    client._last_msg_out = client._last_bytes_received = long_ago
    client._ping_t = long_ago  # a PINGREQ already out and unanswered
    for _ in range(3):
        assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
        assert client.holding
        assert client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS
        assert client._sock is not None  # not closed for a missing PINGRESP
    assert broker.calls == 0
    assert received == []
    assert broker.written.startswith(b"\xc0\x00")  # PINGREQ
    room[0] = True
    sock = client._sock
    assert isinstance(sock, _ReadBuffer)
    while sock.pending() or len(received) < 20:
        client.loop_read()
    assert not client.holding
    assert [r.mid for r in received] == list(range(1, 21))


def test_reads_until_connected_even_without_room() -> None:
    """The CONNACK is read whatever the inbox holds: holding starts once connected."""
    client, broker, received = connected_client(qos1_stream(3))
    client._state = _ConnectionState.MQTT_CS_CONNECT_ASYNC
    client.wait_for_room = lambda _timeout: False
    while len(received) < 3:
        client.loop_read()
    assert not client.holding
    assert broker.calls >= 1


@given(qos=st.integers(0, 2), topic=st.text(max_size=40), payload=st.binary(max_size=3000))
def test_footprint_counts_payload_and_topic(qos: int, topic: str, payload: bytes) -> None:
    received = Received(1, topic, 7, qos, payload)
    assert footprint(received) == len(payload) + len(topic) + RECEIVED_OVERHEAD
    assert droppable(received) == (qos == 0)
