"""Epoch assembly: the sentences a receiver sends for one fix instant, merged into one Fix.

An epoch is the set of sentences with one UTC time of day (RMC, GGA, GNS, GLL, ZDA), with the
sentences that carry no time (GSA, VTG) that follow them. A sentence of another time closes the
epoch, and so does a second sentence of one talker and type with the same time (a receiver that
restarted at a time it had already sent): nothing of one epoch is ever carried into another,
except the date (below) and what was learned of the receiver's habits.

When an epoch is judged:
* **complete**: it holds every sentence (talker and type, with repeats) the receiver sent in its
  last epoch with a position; before anything is learned, when it holds a valid position,
  satellites, HDOP, speed and a date (its own, or one carried from an earlier epoch);
* **refused**: a sentence says "no fix" (RMC or GLL `V`, GGA quality 0, GNS all `N`, GSA fix
  type 1, mode `N`): nothing later can make it valid;
* **closed** by a sentence of another time, or **timed out** (`expire`, on the caller's clock) when
  no sentence came for `EpochSettings.timeout_s`.
A sentence of an epoch already judged is counted as late and merged into nothing.

Merging (edge.epoch.merge): sentences with the `GN` talker (the combined solution) are preferred
over constellation-specific ones of the same type. Several constellation GGAs without a `GN` one
(`GPGGA` + `GLGGA` for one second) are combined: satellites summed, the best quality, the
smallest HDOP, position and altitude from the GGA of the best quality (then most satellites).
Valid needs a position and every present voice to agree. Position from RMC, GNS, GGA, GLL in
that order; satellites and HDOP from GGA, GNS, GSA; speed and course from RMC, VTG.

Dates: from the epoch's own RMC or ZDA (edge.gnss_time: rollover and two-digit years). An epoch
without one (GGA-first receivers at midnight, GGA + ZDA receivers, GLL-only seconds) takes the
day that puts it nearest the last dated epoch, so 00:00:00 after 23:59:59 is the next day and a
time that steps back a little is the same day. A time the window of trust refuses is None.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from edge.gnss_time import corrected_date, trusted
from edge.sentences import (
    DAY_US,
    KINDS,
    POSITION_KINDS,
    TALKERS,
    FixError,
    Record,
    parse_sentence,
)

__all__ = ["DEFAULT_EPOCH_TIMEOUT_S", "EpochAssembler", "EpochSettings", "Fix", "Settled", "merge"]


@dataclass(frozen=True, slots=True)
class Fix:
    """One position fix as the receiver reported it (WGS-84)."""

    time: datetime | None  # GNSS UTC; None without a trusted date
    lat: float
    lon: float
    valid: bool  # a position, and every validity voice of the epoch agrees
    quality: int | None  # GGA fix quality: 0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 float, 6 DR
    satellites: int | None
    hdop: float | None
    altitude_m: float | None
    speed_mps: float | None
    course_deg: float | None
    talker: str


# Quiet time (host seconds) after an epoch's last sentence before it is judged incomplete.
DEFAULT_EPOCH_TIMEOUT_S = 0.3


@dataclass(frozen=True, slots=True)
class EpochSettings:
    timeout_s: float = DEFAULT_EPOCH_TIMEOUT_S  # quiet time before an open epoch is judged


class Settled(NamedTuple):
    """A fix and the `stamp` its epoch's last sentence arrived with (None: none given)."""

    fix: Fix
    arrived: float | None


# A mode letter to the GGA quality it stands for, for epochs without a GGA.
_MODE_QUALITY = {"A": 1, "P": 1, "D": 2, "R": 4, "F": 5, "E": 6, "M": 7, "S": 8}


def _preferred(records: Sequence[Record], kind: str) -> list[Record]:
    """The records of one type, only the combined (`GN`) ones when there are any."""
    of_kind = [r for r in records if r.kind == kind]
    combined = [r for r in of_kind if r.talker == "GN"]
    return combined or of_kind


def _first(values: Sequence[float | int | None]) -> float | int | None:
    return next((v for v in values if v is not None), None)


def merge(records: Sequence[Record], moment: datetime | None) -> Fix:
    """The fix one epoch's records make, dated `moment` (rules in the module docstring)."""
    rmc = _preferred(records, "RMC")[:1]
    gns = _preferred(records, "GNS")[:1]
    gll = _preferred(records, "GLL")[:1]
    gsa = _preferred(records, "GSA")
    vtg = _preferred(records, "VTG")[:1]
    ggas = _preferred(records, "GGA")
    gga: Record | None = None
    gga_satellites: int | None = None
    gga_hdop: float | None = None
    gga_quality: int | None = None
    if ggas:
        gga = max(ggas, key=lambda r: (r.quality or 0, r.satellites or 0, r.lat is not None))
        counts = [r.satellites for r in ggas if r.satellites is not None]
        gga_satellites = sum(counts) if counts else None
        hdops = [r.hdop for r in ggas if r.hdop is not None]
        gga_hdop = min(hdops) if hdops else None
        gga_quality = max(r.quality or 0 for r in ggas)
    sources = [*rmc, *gns, *([gga] if gga is not None else []), *gll]
    located = next((r for r in sources if r.lat is not None and r.lon is not None), None)
    voices = [r.valid for r in (*rmc, *gns, *gll, *vtg)]
    if gga_quality is not None:
        voices.append(gga_quality > 0)
    fix_types = [r.fix_type for r in gsa if r.fix_type is not None]
    if fix_types:
        # Per-constellation GSAs: the solution's fix type is the best of them.
        voices.append(max(fix_types) >= 2)
    valid = located is not None and all(v is not False for v in voices)
    quality = gga_quality
    if quality is None:
        letters = (gns[0].mode if gns else "") or (rmc[0].mode if rmc else "")
        quality = max((_MODE_QUALITY.get(c, 0) for c in letters), default=None)
    gsa_used = [r.satellites for r in gsa if r.satellites is not None]
    satellites = _first(
        [gga_satellites, *(r.satellites for r in gns), sum(gsa_used) if gsa_used else None]
    )
    hdop = _first([gga_hdop, *(r.hdop for r in gns), *(r.hdop for r in gsa)])
    return Fix(
        time=moment,
        lat=located.lat if located is not None and located.lat is not None else 0.0,
        lon=located.lon if located is not None and located.lon is not None else 0.0,
        valid=valid,
        quality=quality,
        satellites=None if satellites is None else int(satellites),
        hdop=None if hdop is None else float(hdop),
        altitude_m=_first(
            [gga.altitude_m if gga is not None else None, *(r.altitude_m for r in gns)]
        ),
        speed_mps=_first([*(r.speed_mps for r in rmc), *(r.speed_mps for r in vtg)]),
        course_deg=_first([*(r.course_deg for r in rmc), *(r.course_deg for r in vtg)]),
        talker=(located or (sources[0] if sources else records[0])).talker,
    )


def _key(record: Record) -> str:
    return record.talker + record.kind


@dataclass(slots=True)
class _Epoch:
    time_us: int
    seen_at: float | None
    arrived: float | None = None
    records: list[Record] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    judged: bool = False

    def complete(self, learned: Counter[str] | None, dated: bool) -> bool:
        if learned is not None:
            return all(self.counts[k] >= n for k, n in learned.items())
        fix = merge(self.records, None)
        return (
            (dated or any(r.date is not None for r in self.records))
            and fix.valid
            and fix.satellites is not None
            and fix.hdop is not None
            and fix.speed_mps is not None
        )

    def refused(self) -> bool:
        """A "no fix" nothing later in the epoch can overrule: a status or mode from RMC, GLL
        or VTG, or any voice of the combined solution (a GLGGA's quality 0 may only mean that
        GLONASS took no part)."""
        return any(
            r.valid is False and (r.kind in ("RMC", "GLL", "VTG") or r.talker == "GN")
            for r in self.records
        )

    def has_position_kind(self) -> bool:
        return any(k[2:] in POSITION_KINDS for k in self.counts)


class EpochAssembler:
    """Turns a receiver's sentences into one Fix per epoch (rules in the module docstring).

    `feed(sentence, now)` returns the fixes the sentence settles (an epoch it closes, the one it
    completes, or a no-fix); `expire(now)` judges an epoch that timed out. `now` is any
    monotonic clock in seconds; without it nothing times out. `wall` reads the host's clock for
    the window of trust (edge.gnss_time); without it the pivot is the release date.
    """

    def __init__(
        self,
        settings: EpochSettings | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or EpochSettings()
        self._wall = wall
        self._open: _Epoch | None = None
        self._learned: Counter[str] | None = None
        self._anchor: datetime | None = None  # the last dated epoch's moment
        self.unparsed = 0  # checksummed sentences of ours whose fields make no sense
        self.late = 0  # sentences of an epoch already judged
        self.no_fix = 0  # no-fix sentences without a time ($GPRMC,,V,,,,,,,,,,N)
        self.untrusted_times = 0  # epochs whose date the window of trust refused
        self.rollovers = 0  # epochs dated by a week-rollover correction

    def update(self, sentence: str) -> Fix | None:
        """The newest fix `sentence` settles, for callers without a clock."""
        fixes = self.feed(sentence)
        return fixes[-1] if fixes else None

    def feed(self, sentence: str, now: float | None = None) -> list[Fix]:
        return [settled.fix for settled in self.settle(sentence, now)]

    def expire(self, now: float) -> list[Fix]:
        return [settled.fix for settled in self.lapse(now)]

    def settle(
        self,
        sentence: str,
        now: float | None = None,
        stamp: float | None = None,
        *,
        lapse: bool = True,
    ) -> list[Settled]:
        """The fixes `sentence` settles, each with the `stamp` of its epoch's last sentence (an
        epoch judged when the next one begins arrived before that one). With `lapse` false the
        open epoch is not judged for quiet time first: the sentence was already waiting when
        `now` was taken (a reader that fell behind), so no quiet time passed before it."""
        out = [] if now is None or not lapse else self.lapse(now)
        if sentence[3:6] not in KINDS or sentence[1:3] not in TALKERS:
            # Sentences the fix does not use (GSV, proprietary) still show the receiver is
            # sending this second's block: the epoch is not quiet.
            if now is not None and self._open is not None and not self._open.judged:
                self._open.seen_at = now
            return out
        try:
            record = parse_sentence(sentence)
        except FixError:
            self.unparsed += 1
            return out
        if record.time_us is None:
            if record.valid is False and record.kind in POSITION_KINDS:
                # No fix and no time: the receiver has nothing; say so at once.
                out.extend(self._close())
                self.no_fix += 1
                out.append(Settled(merge([record], None), stamp))
                return out
            epoch = self._open
            if epoch is None:
                self.late += 1
                return out
        else:
            epoch = self._open
            if epoch is not None and (
                epoch.time_us != record.time_us or epoch.counts[_key(record)] > 0
            ):
                # Another time, or the same time twice from one talker (a receiver that restarted
                # at a time it already sent): another epoch either way.
                out.extend(self._close())
                epoch = None
            if epoch is None:
                epoch = self._open = _Epoch(record.time_us, now)
        epoch.counts[_key(record)] += 1
        epoch.seen_at = now
        if epoch.judged:
            self.late += 1
            return out
        epoch.records.append(record)
        epoch.arrived = stamp
        if epoch.refused() or (
            epoch.has_position_kind() and epoch.complete(self._learned, self._anchor is not None)
        ):
            out.extend(self._judge(epoch))
        return out

    def lapse(self, now: float) -> list[Settled]:
        """The epoch judged because no sentence came for the timeout, if any."""
        epoch = self._open
        if (
            epoch is None
            or epoch.judged
            or epoch.seen_at is None
            or now - epoch.seen_at < self.settings.timeout_s
        ):
            return []
        return self._judge(epoch)

    def _close(self) -> list[Settled]:
        epoch, self._open = self._open, None
        if epoch is None:
            return []
        if epoch.has_position_kind():
            self._learned = Counter(epoch.counts)
        return [] if epoch.judged else self._judge(epoch)

    def _judge(self, epoch: _Epoch) -> list[Settled]:
        epoch.judged = True
        moment = self._moment(epoch)
        if not epoch.has_position_kind():
            return []
        fix = merge(epoch.records, moment)
        if fix.valid and moment is not None:
            self._anchor = moment
        return [Settled(fix, epoch.arrived)]

    def _moment(self, epoch: _Epoch) -> datetime | None:
        host = self._wall() if self._wall is not None else None
        dated = _preferred(epoch.records, "RMC") + _preferred(epoch.records, "ZDA")
        own = next((r.date for r in dated if r.date is not None), None)
        day: date | None = None
        eras = 0
        if own is not None:
            gnss = corrected_date(own, host)
            day, eras = gnss.value, gnss.eras
        elif self._anchor is not None:
            day = _nearest_day(self._anchor, epoch.time_us)
        if day is None:
            return None
        moment = _combine(day, epoch.time_us)
        if not trusted(moment, host):
            self.untrusted_times += 1
            return None
        self.rollovers += eras > 0
        if own is not None:
            self._anchor = moment
        return moment


def _combine(day: date, time_us: int) -> datetime:
    if time_us >= DAY_US:
        # A datetime has no second 60: the leap second's epochs are its last representable instant.
        return datetime.combine(day, time(23, 59, 59, 999_999), tzinfo=UTC)
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(microseconds=time_us)


def _nearest_day(anchor: datetime, time_us: int) -> date:
    candidates = [anchor.date() + timedelta(days=k) for k in (-1, 0, 1)]
    return min(candidates, key=lambda d: abs((_combine(d, time_us) - anchor).total_seconds()))
