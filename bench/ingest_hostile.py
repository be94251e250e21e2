"""A flood of hostile messages through the real ingest, with good vehicles publishing alongside.

    .venv/bin/python -m bench.ingest_hostile               # 100,000 hostile messages
    .venv/bin/python -m bench.ingest_hostile --count 20000 # a smoke run

`envpatrol ingest` (its own process, default settings) on a private Mosquitto and a scratch
database on the machine's PostgreSQL. A publisher process sends the hostile corpus of
`firmware_sim.hostile` (seeded; each message with a vehicle of its own) at QoS 1 as fast as the
broker acknowledges; meanwhile 20 good vehicles publish one reading each every second, and the
bench notes when each is first seen in the `reading` table. The ingest's VmRSS is sampled every
100 ms. Then every message is accounted for: stored, dead-lettered whole, or split (its good
readings stored, each bad one dead-lettered with a `rejected_readings` letter for the message).

Reported: hostile messages per second (first publish to last message accounted for), dead
letters by reason, lost (a good reading or a hostile message accounted for by nothing), duplicated
(a message's letter or a reading written twice), peak RSS, and the good readings' lag from
publish to stored. Target (docs/performance.md): lost 0, duplicated 0, every good reading stored
within 10 s during the flood.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import REPO, broker, database, machine, wait_for_consumer
from bench.ingest_memory import Sampler, peak_mb
from bench.publishing import publish_windowed
from demo.embedded import free_port
from edge.topics import TopicError, Topics
from edge.wire import Position, Reading, encode_message
from firmware_sim.hostile import HostileMessage, hostile_message

SEED = 17
GOOD_VEHICLES = 20
MAX_LAG_S = 10.0
TOPICS = Topics("envpatrol")


def corpus(seed: int, count: int, now: datetime) -> list[HostileMessage]:
    rng = random.Random(seed)
    return [hostile_message(rng, f"h-{i:06d}", now) for i in range(count)]


def flood(port: int, seed: int, count: int, now: datetime) -> None:
    """The publisher process: makes the corpus itself (the same from the same seed and clock)
    and publishes it at QoS 1 as fast as the broker acknowledges."""
    payloads = [(m.topic, m.payload) for m in corpus(seed, count, now)]
    publish_windowed(port, "bench-hostile", payloads, 1, inflight=1000, timeout_s=1200)


def start_ingest(port: int, url: str, directory: Path) -> subprocess.Popen[bytes]:
    config = directory / "ingest.toml"
    config.write_text(
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\nclient_id = "bench-ingest-hostile"\n'
        f'[database]\nurl = "{url}"\n[ingest]\nmetrics_port = {free_port()}\n'
    )
    log = (directory / "ingest.log").open("ab")
    command = [sys.executable, "-m", "edge.cli", "ingest", "--config", str(config)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)


class GoodFleet:
    """Good vehicles publishing one reading a second each, and when each was first stored."""

    def __init__(self, port: int, url: str) -> None:
        self.published: dict[tuple[str, int], float] = {}
        self.seen: dict[tuple[str, int], float] = {}
        self._url = url
        self._stop = threading.Event()
        self._stop_watching = threading.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-good-fleet",
            protocol=paho.MQTTv5,
        )
        self._client.connect("127.0.0.1", port, 60)
        self._client.loop_start()
        self._threads = [
            threading.Thread(target=self._publish, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _publish(self) -> None:
        seq = 0
        while not self._stop.wait(1.0 / GOOD_VEHICLES):
            vehicle = f"good-{seq % GOOD_VEHICLES:02d}"
            n = seq // GOOD_VEHICLES
            position = Position(39.9, 116.4, True, 1, 9, 0.9, 5.0, 90.0, 0.4)
            r = Reading(vehicle, n, datetime.now(UTC), "gnss", position, {"pm25": 20.0}, "p")
            self._client.publish(
                f"envpatrol/v1/{vehicle}/readings", encode_message(vehicle, [r]), qos=1
            )
            self.published[(vehicle, n)] = time.monotonic()
            seq += 1

    def _watch(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop_watching.is_set():
                rows = conn.execute(
                    "SELECT vehicle, seq FROM reading WHERE vehicle LIKE 'good-%'"
                ).fetchall()
                now = time.monotonic()
                for key in rows:
                    self.seen.setdefault(key, now)
                time.sleep(0.05)

    def stop_publishing(self) -> None:
        self._stop.set()
        self._threads[0].join()

    def close(self) -> None:
        self._stop.set()
        self._stop_watching.set()
        for t in self._threads:
            t.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()


def account(messages: list[HostileMessage], url: str) -> tuple[Counter[str], Counter[str]]:
    """Outcomes of the hostile messages (`stored`, `dead-lettered`, `split`, `lost`) and faults
    (`duplicated`: a message's letter twice; `unexplained`: letters no message accounts for)."""
    with psycopg.connect(url, autocommit=True) as conn:
        letters: Counter[tuple[str, bytes]] = Counter(
            (topic, bytes(digest))
            for topic, digest in conn.execute("SELECT topic, sha256(payload) FROM dead_letter")
        )
        stored: Counter[str] = Counter(
            dict(conn.execute("SELECT vehicle, count(*) FROM reading GROUP BY 1").fetchall())
        )
        documents = {
            v
            for (v,) in conn.execute(
                "SELECT vehicle FROM vehicle WHERE status IS NOT NULL OR health IS NOT NULL"
            )
        }
    raw = {(m.topic, hashlib.sha256(m.payload).digest()) for m in messages}
    per_reading: Counter[str] = Counter()
    for (topic, digest), n in list(letters.items()):
        if (topic, digest) not in raw:
            per_reading[topic] += n
            del letters[(topic, digest)]
    outcomes: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    for m in messages:
        vehicle, kind = "", "other"
        with contextlib.suppress(TopicError):
            vehicle, kind = TOPICS.parse(m.topic)
        lettered = letters.pop((m.topic, hashlib.sha256(m.payload).digest()), 0)
        rows = stored.pop(vehicle, 0) if vehicle else 0
        rejected = per_reading.pop(m.topic, 0) if vehicle else 0
        faults["duplicated"] += max(0, lettered - 1)
        if kind in ("status", "health"):
            outcome = "stored" if vehicle in documents else "dead-lettered" if lettered else "lost"
        elif not lettered:
            outcome = "stored" if rows == m.readings and not rejected else "lost"
        elif rejected:
            outcome = "split" if rows + rejected == m.readings else "lost"
        else:
            outcome = "dead-lettered" if rows == 0 else "lost"
        outcomes[outcome] += 1
    faults["unexplained"] += sum(letters.values()) + sum(per_reading.values())
    return outcomes, faults


def run(count: int, seed: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    now = datetime.now(UTC)
    messages = corpus(seed, count, now)
    with tempfile.TemporaryDirectory() as tmp, database() as url, broker(Path(tmp)) as port:
        ingest = start_ingest(port, url, Path(tmp))
        sampler = Sampler(ingest.pid)
        sampler.start()
        try:
            wait_for_consumer(port, url)
            sampler.phase = "flood"
            good = GoodFleet(port, url)
            started = time.monotonic()
            publisher = ctx.Process(target=flood, args=(port, seed, count, now))
            publisher.start()
            publisher.join(timeout=1800)
            print(f"published in {time.monotonic() - started:.1f} s", file=sys.stderr)
            published_s = time.monotonic() - started
            good.stop_publishing()
            outcomes: Counter[str] = Counter()
            faults: Counter[str] = Counter()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                outcomes, faults = account(messages, url)
                if not outcomes["lost"] and good.published.keys() <= good.seen.keys():
                    break
                print(f"waiting: {dict(outcomes)} {dict(faults)}", file=sys.stderr)
                time.sleep(1)
            done_s = time.monotonic() - started
            good.close()
            with psycopg.connect(url, autocommit=True) as conn:
                by_reason: dict[str, int] = dict(
                    conn.execute(
                        "SELECT reason, count(*) FROM dead_letter GROUP BY 1 ORDER BY 2 DESC"
                    ).fetchall()
                )
                good_rows = conn.execute(
                    "SELECT count(*), count(DISTINCT (vehicle, seq)) FROM reading "
                    "WHERE vehicle LIKE 'good-%'"
                ).fetchone()
            hwm = peak_mb(ingest.pid)
            alive = ingest.poll() is None
        finally:
            sampler.stop()
            ingest.terminate()
            ingest.wait(timeout=30)
    lags = sorted(good.seen[k] - at for k, at in good.published.items() if k in good.seen)
    lost_good = len(good.published.keys() - good.seen.keys())
    assert good_rows is not None
    return {
        "hostile": count,
        "outcomes": dict(outcomes),
        "faults": dict(faults),
        "dead_letters": by_reason,
        "published_s": published_s,
        "accounted_s": done_s,
        "messages_per_s": count / done_s,
        "good_published": len(good.published),
        "good_lost": lost_good,
        "good_duplicated": good_rows[0] - good_rows[1],
        "lag_median_s": lags[len(lags) // 2] if lags else float("nan"),
        "lag_p99_s": lags[int(len(lags) * 0.99)] if lags else float("nan"),
        "lag_max_s": lags[-1] if lags else float("nan"),
        "rss_start_mb": sampler.peaks.get("start", 0.0),
        "rss_peak_mb": max(hwm, *sampler.peaks.values()),
        "ingest_alive": alive,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="hostile messages")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    print(machine())
    result = run(args.count, args.seed)
    for key, value in result.items():
        print(f"{key:18s} {value:.2f}" if isinstance(value, float) else f"{key:18s} {value}")
    lost = result["outcomes"].get("lost", 0) + result["good_lost"]
    duplicated = result["faults"].get("duplicated", 0) + result["good_duplicated"]
    ok = (
        lost == 0
        and duplicated == 0
        and not result["faults"].get("unexplained", 0)
        and result["lag_max_s"] < MAX_LAG_S
        and result["ingest_alive"]
    )
    print(
        f"lost {lost}, duplicated {duplicated}, good readings within {MAX_LAG_S:.0f} s: "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
