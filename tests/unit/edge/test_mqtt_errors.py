"""What the agent and the ingest say when a broker will not take their connection."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt import MqttSettings, closed_unanswered, connect_refused

V5 = MqttSettings.from_url("mqtt://broker.example:1883")
V311 = MqttSettings.from_url("mqtt://broker.example:1883?protocol=3.1.1")


def _reason(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, name)  # type: ignore[no-untyped-call]


def test_an_mqtt5_connect_refused_for_its_version_says_to_ask_for_3_1_1() -> None:
    text = connect_refused(V5, _reason("Unsupported protocol version"))
    assert "mqtt://broker.example:1883" in text
    assert "?protocol=3.1.1" in text


def test_other_refusals_say_only_what_the_broker_said() -> None:
    text = connect_refused(V5, _reason("Bad user name or password"))
    assert "Bad user name or password" in text
    assert "protocol" not in text
    assert "add ?protocol" not in connect_refused(V311, _reason("Unsupported protocol version"))


def test_a_connection_closed_unanswered_points_at_the_protocol_version_under_mqtt5() -> None:
    assert "?protocol=3.1.1" in closed_unanswered(V5)
    text = closed_unanswered(V311)
    assert "?protocol=3.1.1" in text  # the URL it used, for the log
    assert "add ?protocol" not in text
