"""A hostile box and a noisy GPS on pseudo-terminals, then an unplugged and replugged adapter:
the agent keeps running, keeps counting, accounts for every byte the box sent, and takes readings
again once the box answers."""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from demo.embedded import free_port
from edge.agent import Agent
from edge.box import Discard
from edge.config import BoxSettings, EdgeSettings, GpsSettings, PublishSettings
from edge.modbus import decode_request, encode_exception_response, encode_read_response
from edge.mqtt import MqttSettings
from edge.nmea import format_gga, format_rmc
from edge.profile import load_profile
from firmware_sim.box import box_identity
from firmware_sim.pty import PseudoTerminal
from firmware_sim.truth import account
from tests.services import wait_until

pytestmark = pytest.mark.e2e

PROFILE = load_profile("default-multi")
SPEED = 50.0


class HostileBox:
    """Answers Modbus requests with a rotating mix of good, garbled, cut and missing frames."""

    def __init__(self, pty: PseudoTerminal, seed: int = 1) -> None:
        self.pty = pty
        self.rng = random.Random(seed)
        self.requests = 0
        self.sent: list[bytes] = []  # each answer's bytes, in the order written
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def answer(self) -> list[bytes]:
        values: dict[str, float | None] = {"pm25": 35.0 + self.rng.random(), "temperature": 11.0}
        good = encode_read_response(PROFILE.address, PROFILE.function, PROFILE.encode(values))
        bad = bytearray(good)
        bad[5] ^= 0x55
        answers = [
            [good],
            [self.rng.randbytes(23)],  # line noise only
            [good[: len(good) // 2]],  # cut off mid-frame
            [bytes(bad)],  # bit errors: CRC mismatch
            [],  # no answer at all
            [self.rng.randbytes(7) + good],  # noise before a good frame
            [encode_exception_response(PROFILE.address, PROFILE.function, 4)],
            [good[:5], good[5:11], good[11:]],  # dribbled out in pieces
        ]
        return answers[self.requests % len(answers)]

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            data = self.pty.read(0.05)
            if not data:
                continue
            buffer += data
            decoded = decode_request(buffer, PROFILE.address)
            buffer = buffer[decoded.consumed :]
            if decoded.frame is None:
                continue
            if decoded.frame == PROFILE.identity_request and PROFILE.identity is not None:
                # Who it is, plainly: the hostility is in the readings' answers.
                registers = PROFILE.identity.encode(box_identity(PROFILE, "hostile"))
                request = PROFILE.identity_request
                self.pty.write(encode_read_response(request.address, request.function, registers))
                continue
            pieces = self.answer()
            self.requests += 1
            if pieces:
                self.sent.append(b"".join(pieces))
            for piece in pieces:
                self.pty.write(piece)
                time.sleep(0.002)


class NoisyGps:
    """NMEA from several constellations mixed with binary frames and broken sentences."""

    def __init__(self, pty: PseudoTerminal) -> None:
        self.pty = pty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        rng = random.Random(2)
        moment = datetime.now(UTC) - timedelta(hours=1)
        talkers = ["GN", "GP", "GL", "GA", "GB", "BD"]
        i = 0
        while not self._stop.is_set():
            moment += timedelta(seconds=1)
            lat, lon = 39.8917 + i * 1e-5, 116.4661
            talker = talkers[i % len(talkers)]
            gga = format_gga(moment, lat, lon, talker=talker)
            rmc = format_rmc(moment, lat, lon, speed_mps=5.0, course_deg=90.0, talker=talker)
            chunks = [
                b"\xb5\x62\x01\x07" + rng.randbytes(40),  # a u-blox UBX frame
                gga.encode(),
                rmc.encode()[:30],  # cut short, the next sentence starts
                rmc.encode(),
                rmc.encode().replace(b"*", b"*0")[:-3] + b"\r\n",  # checksum broken
                b"$GPXXX," + b"9" * 300 + b"\r\n",  # far too long
                "$GNRMC,ü,garbage*00\r\n".encode(),
            ]
            self.pty.write(b"".join(chunks), timeout=0.05)
            i += 1
            self._stop.wait(0.02)


def test_the_agent_survives_garbage_and_an_unplugged_port(tmp_path: Path) -> None:
    box_link = tmp_path / "ttyUSB0"  # the udev-style name the agent is configured with
    box_pty = PseudoTerminal()
    os.symlink(box_pty.path, box_link)
    gps_pty = PseudoTerminal()
    box = HostileBox(box_pty)
    gps = NoisyGps(gps_pty)
    settings = EdgeSettings(
        vehicle="garbage-01",
        mqtt=MqttSettings.from_url(f"mqtt://127.0.0.1:{free_port()}"),  # nobody listens
        box=BoxSettings(port=str(box_link), timeout_s=0.08, retries=2),
        gps=GpsSettings(port=gps_pty.path),
        outbox_path=str(tmp_path / "outbox.sqlite3"),
        time_scale=SPEED,
        publish=PublishSettings(reconnect_min_s=0.2, reconnect_max_s=1.0),
    )
    discards: list[Discard] = []
    agent = Agent(settings, on_discard=discards.append)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    counters = agent.box.counters
    try:
        wait_until(
            lambda: (
                counters.ok >= 5
                and counters.crc_errors > 0
                and counters.timeouts > 0
                and counters.short_frames > 0
                and counters.exceptions > 0
                and counters.garbage_bytes > 0
            ),
            30,
            "every kind of bad answer",
        )
        wait_until(lambda: agent.gps.fixes > 10, 10, "GPS fixes through the noise")
        gps_counters = agent.gps.counters()
        assert gps_counters["bad_sentences"] > 0
        assert gps_counters["garbage_bytes"] > 0

        # The adapter is pulled out: the device node disappears.
        box.stop()
        box_pty.close()
        box_link.unlink()
        failed = counters.failed
        wait_until(lambda: counters.failed >= failed + 3, 10, "polls to fail on the lost port")
        assert thread.is_alive()
        readings = agent.readings
        # Every byte the box sent until then is an answer taken, a discard, or still unread.
        accounting = account(box.sent, discards, counters.ok)
        assert len(accounting.taken) == readings
        assert {d.reason for d in discards} >= {"short", "crc", "exception"}

        # ... and plugged back in (udev recreates the same name for a new device).
        box_pty = PseudoTerminal()
        os.symlink(box_pty.path, box_link)
        box = HostileBox(box_pty, seed=3)
        wait_until(lambda: agent.readings >= readings + 3, 30, "readings after replugging")
        assert counters.reopens >= 2
        health = agent.health()
        assert health["poll_success_rate"] < 1.0
        assert health["crc_errors"] == counters.crc_errors
        assert health["outbox"]["depth"] == agent.readings  # no broker: all kept
    finally:
        stop.set()
        thread.join(30)
        box.stop()
        gps.stop()
        box_pty.close()
        gps_pty.close()
    assert not thread.is_alive()
