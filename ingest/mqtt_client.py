"""The ingest's MQTT client: paho, with three per-message costs taken out of its receive path.

Draining a backlog, the ingest takes in tens of thousands of small PUBLISH packets a second, and
paho spent more time on each than the ingest's own decoding:

- it reads every packet with three or more `recv` calls (the command byte, each byte of the
  remaining length, the rest); here the socket is read through a buffer of up to 256 KB, which
  paho's loop already knows how to drain (`pending()`, as for TLS);
- with MQTT 5 it builds and clears a `Properties` object for every PUBLISH, a large share of
  its time per message (docs/performance.md); here a PUBLISH without properties at QoS 0 or 1 is decoded directly
  (`lean_publish`) and its message carries `properties = None`; anything else (properties
  present, QoS 2, a malformed packet) goes through paho's own decoder, unchanged;
- each manual acknowledgement is its own queued packet, socket write and wake-up of the network
  thread; here `ack_all` queues a batch's PUBACKs as one write;
- every message's topic is matched against the per-topic callbacks (`message_callback_add`)
  before `on_message` is called; here, while none are registered (the ingest registers none),
  `on_message` is called directly, with paho's locking and exception handling.

- paho's loop reads one packet per turn (a `select`, its keep-alive checks, a packet read in
  three steps); here, after each turn, every complete PUBLISH of the kind above that the buffer
  already holds is split off in one pass (`split_publishes`) and handed over as one list
  (`on_received`), so a turn takes in hundreds of messages instead of one.

One addition: while `wait_for_room` says there is no room (the ingest's inbox is full), the
socket is not read at all. What the broker would send then waits in the broker: QoS 1 within the
Receive Maximum and its queue limits. The loop goes on writing (acknowledgements, PINGREQ), and
since the PINGRESP waits unread behind the publishes, paho's keep-alive is told the connection is
alive meanwhile; a connection that died during the hold is found when reading resumes.

The rest (connecting, sessions, keep-alive, reconnecting, TLS, subscriptions) is paho's, unchanged.
The overrides use paho internals of the 2.x series (pinned in pyproject.toml); the tests decode
random packets both ways and run the ingest's delivery tests through this client.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.client import MQTT_LOG_ERR
from paho.mqtt.enums import MQTTErrorCode, _ConnectionState

READ_CHUNK = 256 * 1024
# While holding, the longest wait for room before the loop's other work (writes, keep-alive):
# short, since acknowledgements queued meanwhile are written only after it.
HOLD_WAIT_S = 0.1
_PUBACK = 0x40
_RECEIVED_INFO = paho.MQTTMessageInfo(0)  # see IngestClient._handle_publish


def lean_publish(header: int, packet: bytes | bytearray) -> tuple[bytes, int, bytes] | None:
    """(topic, packet id, payload) of an MQTT 5 PUBLISH with no properties at QoS 0 or 1, from
    its fixed header's first byte and the rest after the remaining length; None for anything
    else, which paho's own decoder then handles (and rejects when malformed)."""
    return _lean_body(header, packet, 0, len(packet))


def _lean_body(
    header: int, data: bytes | bytearray, at: int, stop: int
) -> tuple[bytes, int, bytes] | None:
    """`lean_publish` of the packet whose variable header starts at `at` and which ends at
    `stop` in `data`."""
    qos = (header & 0x06) >> 1
    if qos > 1 or stop - at < 2:
        return None
    end = at + 2 + ((data[at] << 8) | data[at + 1])
    topic = bytes(data[at + 2 : min(end, stop)])
    mid = 0
    if qos:
        if stop < end + 2:
            return None
        mid = (data[end] << 8) | data[end + 1]
        end += 2
    # The properties length is a variable byte integer; 0 (one zero byte) is the only case here.
    if stop <= end or data[end] != 0:
        return None
    return topic, mid, bytes(data[end + 1 : stop])


class Received(NamedTuple):
    """A PUBLISH as the ingest takes it: the connection it came on (`IngestClient.connection`:
    acknowledgements belong to it), its topic, packet id, QoS and payload."""

    connection: int
    topic: str
    mid: int
    qos: int
    payload: bytes


# What a `Received` holds in memory besides its payload and topic: the tuple, the bytes and str
# headers, the packet id, the inbox's entry (tracemalloc, with 1 KB payloads).
RECEIVED_OVERHEAD = 300


def footprint(received: Received) -> int:
    """The bytes `received` counts against the ingest's inbox bound."""
    return len(received.payload) + len(received.topic) + RECEIVED_OVERHEAD


def droppable(received: Received) -> bool:
    """QoS 0: sent at most once, so dropped first when the inbox is full; QoS 1 and 2 never."""
    return received.qos == 0


def split_publishes(data: bytes, pos: int) -> tuple[list[tuple[int, bytes, int, bytes]], int]:
    """The complete PUBLISH packets that `lean_publish` takes (MQTT 5, QoS 0 or 1, no
    properties) at the front of `data[pos:]`, as (fixed header byte, topic, packet id, payload),
    and where the first packet not taken starts: one of another kind, one with properties or
    malformed (paho's to handle), or one not yet complete."""
    found: list[tuple[int, bytes, int, bytes]] = []
    end = len(data)
    while pos < end:
        header = data[pos]
        if header & 0xF0 != 0x30:
            break  # not a PUBLISH
        # The remaining length: a variable byte integer of at most four bytes.
        length, shift, at = 0, 0, pos + 1
        while True:
            if at >= end or at - pos > 4:
                return found, pos
            byte = data[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        stop = at + length
        if stop > end:
            break
        body = _lean_body(header, data, at, stop)
        if body is None:
            break  # properties present, or malformed: paho's decoder
        found.append((header, *body))
        pos = stop
    return found, pos


def topic_text(topic: bytes) -> str:
    """A topic as text; a broker passes only UTF-8 topics, and anything else is kept readable
    (and then rejected as a bad topic) instead of stopping the ingest."""
    return topic.decode("utf-8", "replace")


def pubacks(mids: list[int]) -> bytes:
    """PUBACK packets (success, no reason code: valid in MQTT 3.1.1 and 5) for `mids`, back to
    back."""
    return b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)


class _ReadBuffer:
    """A connected socket read in large chunks; everything else goes to the socket itself."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        pos, data = self._pos, self._data
        if pos < len(data):
            end = min(pos + bufsize, len(data))
            self._pos = end
            return data[pos:end]
        chunk: bytes = self._sock.recv(max(bufsize, READ_CHUNK))
        if len(chunk) <= bufsize:
            return chunk
        self._data, self._pos = chunk, bufsize
        return chunk[:bufsize]

    def pending(self) -> int:
        """Bytes already read and not yet taken, plus what a TLS socket holds decrypted."""
        inner = getattr(self._sock, "pending", None)
        return len(self._data) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class IngestClient(paho.Client):
    """paho's Client with a buffered receive path, a direct PUBLISH decoder and batched PUBACKs
    (see the module docstring).

    With `on_received` set, every PUBLISH the lean decoder takes goes to it, in lists, as
    `Received`; the rest (properties present, QoS 2) still goes to `on_message`. Both are called
    from the network thread, in the order the packets arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_received: Callable[[list[Received]], None] | None = None
        # Waits up to the given seconds for room for more messages; False: still none.
        self.wait_for_room: Callable[[float], bool] | None = None
        self.connection = 0  # counts the sockets opened: which connection messages came on
        self.holding = False  # not reading the socket: no room for more messages

    def _create_socket(self) -> Any:
        # Counted before connecting: a batch committed meanwhile must not acknowledge, on the
        # new socket, messages that came on the old one.
        self.connection += 1
        return _ReadBuffer(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's turn (one packet, which may fill the buffer), then every complete lean
        PUBLISH the buffer already holds."""
        if self._hold():
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        rc = super().loop_read(max_packets)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drain()
        return rc

    def _hold(self) -> bool:
        """Whether to leave the socket unread this turn: connected, and still no room after a
        short wait. A held connection counts as alive for paho's keep-alive: it goes on sending
        PINGREQ (the broker's keep-alive is met) and expects no PINGRESP until reading resumes."""
        wait = self.wait_for_room
        if wait is None or self._state != _ConnectionState.MQTT_CS_CONNECTED:
            self.holding = False
            return False
        self.holding = not wait(HOLD_WAIT_S)
        if self.holding:
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()
            self._ping_t = 0
        return self.holding

    def _drain(self) -> None:
        sock = self._sock
        on_received = self.on_received
        if (
            on_received is None
            or not isinstance(sock, _ReadBuffer)
            or self._in_packet["command"]  # in the middle of a packet paho is reading
            or self._protocol != paho.MQTTv5
        ):
            return
        found, sock._pos = split_publishes(sock._data, sock._pos)
        if not found:
            return
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        connection = self.connection
        self._deliver(
            [
                Received(connection, topic_text(topic), mid, (header & 0x06) >> 1, payload)
                for header, topic, mid, payload in found
            ]
        )

    def _deliver(self, received: list[Received]) -> None:
        on_received = self.on_received
        assert on_received is not None
        with self._in_callback_mutex:
            try:
                on_received(received)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_received: %s", err)
                if not self.suppress_exceptions:
                    raise
        if not self._manual_ack:
            self.ack_all([r.mid for r in received if r.qos == 1])

    def _handle_publish(self) -> MQTTErrorCode:
        header: int = self._in_packet["command"]
        decoded = (
            lean_publish(header, self._in_packet["packet"])
            if self._protocol == paho.MQTTv5
            else None
        )
        if decoded is None:
            return super()._handle_publish()
        topic, mid, payload = decoded
        if self.on_received is not None:
            self._deliver(
                [Received(self.connection, topic_text(topic), mid, (header & 0x06) >> 1, payload)]
            )
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        # Made without paho's constructor, which gives every message an MQTTMessageInfo with
        # its own lock and condition, a publisher's delivery tracker that a received message
        # never uses: they share one.
        message = paho.MQTTMessage.__new__(paho.MQTTMessage)
        message.mid = mid
        message.topic = topic  # type: ignore[assignment]  # the setter takes the raw bytes
        message.dup = bool(header & 0x08)
        message.qos = (header & 0x06) >> 1
        message.retain = bool(header & 0x01)
        message.payload = payload
        message.properties = None
        message.state = paho.mqtt_ms_invalid
        message.info = _RECEIVED_INFO
        message.timestamp = paho.time_func()
        self._handle_on_message(message)
        if message.qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        root = self._on_message_filtered._root
        if root._children or root._content is not None:  # per-topic callbacks: paho's way
            super()._handle_on_message(message)
            return
        with self._callback_mutex:
            on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def no_reconnect(self) -> None:
        """A lost connection ends the network loop instead of being made again."""
        self._reconnect_on_failure = False

    def ack_all(self, mids: list[int]) -> None:
        """Acknowledge the QoS 1 messages `mids` (manual acknowledgement) in one write."""
        if mids:
            self._packet_queue(_PUBACK, pubacks(mids), 0, 1)
