"""The ingest's MQTT client: paho, with three per-message costs taken out of its receive path.

Draining a backlog, the ingest takes in tens of thousands of small PUBLISH packets a second, and
paho spent more time on each than the ingest's own decoding:

- it reads every packet with three or more `recv` calls (the command byte, each byte of the
  remaining length, the rest); here the socket is read through a buffer of up to 256 KB, which
  paho's loop already knows how to drain (`pending()`, as for TLS);
- with MQTT 5 it builds and clears a `Properties` object for every PUBLISH, about a third of its
  time per message; here a PUBLISH without properties at QoS 0 or 1 is decoded directly
  (`lean_publish`) and its message carries `properties = None`; anything else (properties
  present, QoS 2, a malformed packet) goes through paho's own decoder, unchanged;
- each manual acknowledgement is its own queued packet, socket write and wake-up of the network
  thread; here `ack_all` queues a batch's PUBACKs as one write;
- every message's topic is matched against the per-topic callbacks (`message_callback_add`)
  before `on_message` is called; here, while none are registered (the ingest registers none),
  `on_message` is called directly, with paho's locking and exception handling.

The rest (connecting, sessions, keep-alive, reconnecting, TLS, subscriptions) is paho's, unchanged.
The overrides use paho internals of the 2.x series (pinned in pyproject.toml); the tests decode
random packets both ways and run the ingest's delivery tests through this client.
"""

from __future__ import annotations

import struct
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import MQTT_LOG_ERR
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 256 * 1024
_PUBACK = 0x40
_RECEIVED_INFO = paho.MQTTMessageInfo(0)  # see IngestClient._handle_publish


def lean_publish(header: int, packet: bytes | bytearray) -> tuple[bytes, int, bytes] | None:
    """(topic, packet id, payload) of an MQTT 5 PUBLISH with no properties at QoS 0 or 1, from
    its fixed header's first byte and the rest after the remaining length; None for anything
    else, which paho's own decoder then handles (and rejects when malformed)."""
    qos = (header & 0x06) >> 1
    if qos > 1 or len(packet) < 2:
        return None
    end = 2 + ((packet[0] << 8) | packet[1])
    topic = bytes(packet[2:end])
    mid = 0
    if qos:
        if len(packet) < end + 2:
            return None
        mid = (packet[end] << 8) | packet[end + 1]
        end += 2
    # The properties length is a variable byte integer; 0 (one zero byte) is the only case here.
    if len(packet) <= end or packet[end] != 0:
        return None
    return topic, mid, bytes(packet[end + 1 :])


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
    (see the module docstring)."""

    def _create_socket(self) -> Any:
        return _ReadBuffer(super()._create_socket())

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

    def ack_all(self, mids: list[int]) -> None:
        """Acknowledge the QoS 1 messages `mids` (manual acknowledgement) in one write."""
        if mids:
            self._packet_queue(_PUBACK, pubacks(mids), 0, 1)
