"""Publishing a benchmark's messages as fast as the broker acknowledges them, within a window.

paho's packet ids wrap at 65,535, so more messages outstanding would overwrite each other; the
window also keeps paho's queue of unsent QoS 0 messages (unbounded) small.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

WINDOW = 10_000


def publish_windowed(
    port: int,
    client_id: str,
    payloads: Sequence[tuple[str, bytes]],
    qos: int,
    inflight: int,
    timeout_s: float,
) -> int:
    """Publish `payloads` (topic, payload) to the broker on 127.0.0.1:`port` at `qos`, at most
    `inflight` in flight (stay within the broker's Receive Maximum: a publisher beyond it is
    disconnected and resends); returns how many were acknowledged (sent, for QoS 0)."""
    window = threading.BoundedSemaphore(WINDOW)
    finished = threading.Event()
    done = [0]
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)

    def on_publish(*_args: object) -> None:
        window.release()
        done[0] += 1
        if done[0] == len(payloads):
            finished.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    for topic, payload in payloads:
        window.acquire()
        client.publish(topic, payload, qos=qos)
    finished.wait(timeout=timeout_s)
    client.disconnect()
    client.loop_stop()
    return done[0]
