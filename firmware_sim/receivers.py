"""Real GNSS receivers' NMEA output, generated from a known truth track.

Each `ReceiverModel` is written from its maker's documented output: the sentences it sends per
epoch and their order, talkers, the digits of time and position, what it sends without a fix, and
its known faults (a firmware past its GPS week rollover, sentences without a checksum). A
`TruthEpoch` says where the vehicle was and what the receiver knew at one fix instant; `transmit`
turns a track into the bytes the receiver puts on the line and when, and `rechunk` cuts them at
arbitrary byte boundaries as a serial port's reads do. Everything here is pure: a test compares
what the edge makes of the bytes with the truth they came from.

Positions lie on a grid of 1e-4 arc-minutes (about 0.19 m), which every modelled format (4 to 8
decimals of minutes) represents exactly, so a decoded position can be held to the truth to 1 cm.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from edge.gnss_time import ERA
from edge.nmea import checksum
from edge.sentences import KNOT_MPS

__all__ = [
    "RECEIVERS",
    "STATES",
    "Burst",
    "Chunk",
    "ReceiverModel",
    "Segment",
    "TruthEpoch",
    "epoch_sentences",
    "epochs_at",
    "make_track",
    "per_burst",
    "rechunk",
    "reported_date",
    "transmit",
    "utc_at",
]

UNITS_PER_MINUTE = 10_000  # position grid: 1e-4 arc-minute
UNITS_PER_DEGREE = 60 * UNITS_PER_MINUTE
METRES_PER_MINUTE = 1852.0  # one arc-minute of latitude, by the nautical mile's definition
DAY_S = 86_400

# What the receiver knows at an epoch:
#   fix      a valid fix good enough for the default filter;
#   weak     the receiver calls it valid, but with 3 satellites and HDOP 12 (the filter's job);
#   void     the receiver says no fix (RMC V, GGA quality 0) but still prints a position;
#   outage   no fix, empty position fields (tunnel, antenna lost);
#   restart  no fix after a reset, its clock stepped back (`step_back_s`).
STATES = ("fix", "weak", "void", "outage", "restart")


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the truth track: `epochs` seconds in one receiver state."""

    state: str
    epochs: int
    speed_mps: float = 10.0
    turn_deg_per_s: float = 0.0
    step_back_s: float = 0.0  # restart only: how far behind the receiver's clock restarts

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {self.state!r}")
        if self.epochs < 1 or self.speed_mps < 0 or self.step_back_s < 0:
            raise ValueError("a segment needs epochs >= 1, speed >= 0 and step_back_s >= 0")


@dataclass(frozen=True, slots=True)
class TruthEpoch:
    """One fix instant: where the vehicle truly was and what the receiver knew."""

    index: int
    elapsed_s: float  # physical seconds since the track began (a leap second counts)
    day: date  # UTC date of the epoch's label
    second_of_day: int  # 0..86399, or 86400 for a leap second (23:59:60)
    lat_units: int  # latitude in 1e-4 arc-minutes, north positive
    lon_units: int
    speed_mps: float
    course_deg: float
    state: str
    satellites: int  # in use, all constellations
    second_satellites: int  # of them, from the second constellation
    hdop: float
    step_back_s: float = 0.0

    @property
    def lat(self) -> float:
        return self.lat_units / UNITS_PER_DEGREE

    @property
    def lon(self) -> float:
        return self.lon_units / UNITS_PER_DEGREE

    @property
    def leap(self) -> bool:
        return self.second_of_day == DAY_S

    @property
    def receiver_valid(self) -> bool:
        """Whether every sentence of the epoch says the receiver has a fix."""
        return self.state in ("fix", "weak")

    @property
    def usable(self) -> bool:
        """Valid, and good enough for the default fix filter (4 satellites, HDOP 10)."""
        return self.state == "fix"

    @property
    def utc(self) -> datetime:
        """The epoch's UTC instant; a leap second reads as the last instant of its day."""
        midnight = datetime.combine(self.day, datetime.min.time(), tzinfo=UTC)
        if self.leap:
            return midnight + timedelta(seconds=DAY_S - 1, microseconds=999_999)
        return midnight + timedelta(seconds=self.second_of_day)

    def window(self) -> tuple[datetime, datetime]:
        """The datetimes a decoder may give this epoch: its instant, or for 23:59:60 anything
        from 23:59:59 to the next midnight (datetime has no 61st second)."""
        if self.leap:
            midnight = datetime.combine(self.day, datetime.min.time(), tzinfo=UTC)
            return midnight + timedelta(seconds=DAY_S - 1), midnight + timedelta(seconds=DAY_S)
        return self.utc, self.utc


def make_track(
    start: datetime,
    lat: float,
    lon: float,
    segments: Sequence[Segment],
    *,
    seed: int = 0,
    leap_days: frozenset[date] = frozenset(),
    course_deg: float = 45.0,
) -> tuple[TruthEpoch, ...]:
    """A 1 Hz truth track from `start` (a whole UTC second) through `segments`.

    A day in `leap_days` ends with a leap second, labelled 23:59:60. Satellites and HDOP are drawn
    from `seed`, so a track is a pure function of its arguments.
    """
    if start.tzinfo is None or start.microsecond:
        raise ValueError("start must be an aware datetime on a whole second")
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    day, second = start.date(), start.hour * 3600 + start.minute * 60 + start.second
    north = float(round(lat * UNITS_PER_DEGREE))
    east = float(round(lon * UNITS_PER_DEGREE))
    course = course_deg % 360.0
    epochs: list[TruthEpoch] = []
    for segment in segments:
        for _ in range(segment.epochs):
            index = len(epochs)
            if index:
                # Move one second along the course, then step the UTC label.
                metres = segment.speed_mps
                north += metres * math.cos(math.radians(course)) / METRES_PER_MINUTE * 1e4
                lat_now = north / UNITS_PER_DEGREE
                east += (
                    metres
                    * math.sin(math.radians(course))
                    / (METRES_PER_MINUTE * max(0.05, math.cos(math.radians(lat_now))))
                    * 1e4
                )
                course = (course + segment.turn_deg_per_s) % 360.0
                if second == DAY_S - 1 and day in leap_days:
                    second = DAY_S
                elif second >= DAY_S - 1:
                    day, second = day + timedelta(days=1), 0
                else:
                    second += 1
            satellites, second_sats, hdop = _sky(segment.state, rng)
            epochs.append(
                TruthEpoch(
                    index=index,
                    elapsed_s=float(index),
                    day=day,
                    second_of_day=second,
                    lat_units=round(north),
                    lon_units=round(east),
                    speed_mps=segment.speed_mps,
                    course_deg=round(course, 1),
                    state=segment.state,
                    satellites=satellites,
                    second_satellites=second_sats,
                    hdop=hdop,
                    step_back_s=segment.step_back_s if segment.state == "restart" else 0.0,
                )
            )
    return tuple(epochs)


def _sky(state: str, rng: random.Random) -> tuple[int, int, float]:
    if state == "fix":
        # At least 4 from the first constellation alone, whatever a decoder does with a second.
        return rng.randint(6, 12), rng.randint(1, 2), round(rng.uniform(0.6, 2.5), 1)
    if state == "weak":
        return 3, 0, 12.0
    if state == "void":
        return rng.randint(0, 3), 0, 25.0
    return 0, 0, 99.99


def epochs_at(track: Sequence[TruthEpoch], moment: datetime) -> list[TruthEpoch]:
    """The epochs a fix dated `moment` may stand for (two around a leap second)."""
    return [e for e in track if e.window()[0] <= moment <= e.window()[1]]


def utc_at(track: Sequence[TruthEpoch], elapsed_s: float) -> datetime:
    """True UTC at `elapsed_s` seconds into the track (within the second of a leap)."""
    before = [e for e in track if e.elapsed_s <= elapsed_s]
    epoch = before[-1] if before else track[0]
    return epoch.window()[0] + timedelta(seconds=elapsed_s - epoch.elapsed_s)


# ---------------------------------------------------------------------------------------------
# Receivers, as their documentation describes them.


@dataclass(frozen=True, slots=True)
class ReceiverModel:
    """What one receiver sends each epoch, and how it writes it.

    `order` names the sentences of an epoch in the receiver's order: RMC, VTG, GGA, GGA2 (a second
    GGA for the second constellation), GSA, GSV, GLL, ZDA, or proprietary PGRME/PGRMM.
    """

    name: str
    summary: str  # what the documentation says, in one line (docs/edge.md lists them)
    talker: str  # of the combined (or only) solution
    order: tuple[str, ...]
    constellations: tuple[str, ...]  # talkers of the systems in view, for GSA and GSV
    nmea: str = "4.0"  # "2.0" and "2.1" have no mode letter; "4.10" adds navStatus, systemId
    time_decimals: int = 2
    minute_decimals: int = 5
    speed_decimals: int = 3
    quality: int = 1  # GGA quality of a fix: 1 autonomous, 2 differential (SBAS, beacon)
    gga_talkers: tuple[str, str] = ("", "")  # the two GGAs' talkers when GGA2 is sent
    no_checksum: frozenset[str] = frozenset()  # sentences sent without '*hh'
    era_start: date | None = None  # firmware's week-rollover pivot: dates within 1024 weeks
    baud: int = 9600

    @property
    def mode_letter(self) -> bool:
        return self.nmea not in ("2.0", "2.1")


RECEIVERS: dict[str, ReceiverModel] = {
    model.name: model
    for model in (
        ReceiverModel(
            "ublox-m8",
            "u-blox M8 (NMEA 4.0): RMC, VTG, GGA, one GNGSA per system, GPGSV/GLGSV, GLL; GN "
            "talker; without a fix the sentences keep their time with empty fields",
            "GN",
            ("RMC", "VTG", "GGA", "GSA", "GSV", "GLL"),
            ("GP", "GL"),
        ),
        ReceiverModel(
            "ublox-f9",
            "u-blox F9 (NMEA 4.10, high-precision mode, 38400 Bd): as M8 with navStatus in RMC, "
            "systemId in GSA, 7 decimals of minutes; GPS, GLONASS, Galileo, BeiDou",
            "GN",
            ("RMC", "VTG", "GGA", "GSA", "GSV", "GLL"),
            ("GP", "GL", "GA", "GB"),
            nmea="4.10",
            minute_decimals=7,
            baud=38400,
        ),
        ReceiverModel(
            "sirf-star3",
            "SiRFstar III (GPS): GGA first, then GSA, GSV, RMC; hhmmss.sss, ddmm.mmmm",
            "GP",
            ("GGA", "GSA", "GSV", "RMC"),
            ("GP",),
            nmea="2.3",
            time_decimals=3,
            minute_decimals=4,
            speed_decimals=2,
        ),
        ReceiverModel(
            "sirf-gp-gl",
            "SiRF-class GPS+GLONASS: a GPGGA and a GLGGA per epoch (each counting its own "
            "system's satellites), then GNGSA, GSV, GNRMC",
            "GN",
            ("GGA", "GGA2", "GSA", "GSV", "RMC"),
            ("GP", "GL"),
            nmea="2.3",
            time_decimals=3,
            minute_decimals=4,
            speed_decimals=2,
            gga_talkers=("GP", "GL"),
        ),
        ReceiverModel(
            "quectel-l76",
            "Quectel L76 (GPS+GLONASS, NMEA 3.01): RMC, VTG, GGA, GSA, GSV, GLL; GN talker; "
            "hhmmss.sss, ddmm.mmmm",
            "GN",
            ("RMC", "VTG", "GGA", "GSA", "GSV", "GLL"),
            ("GP", "GL"),
            nmea="3.01",
            time_decimals=3,
            minute_decimals=4,
            speed_decimals=2,
        ),
        ReceiverModel(
            "beidou-bd",
            "BeiDou-only receiver, Chinese standard talker BD: GGA, GLL, GSA, GSV, RMC, VTG, ZDA",
            "BD",
            ("GGA", "GLL", "GSA", "GSV", "RMC", "VTG", "ZDA"),
            ("BD",),
            time_decimals=3,
            minute_decimals=5,
        ),
        ReceiverModel(
            "beidou-gb",
            "BeiDou-only receiver, NMEA 4.10 talker GB: GGA, GLL, GSA, GSV, RMC, VTG, ZDA",
            "GB",
            ("GGA", "GLL", "GSA", "GSV", "RMC", "VTG", "ZDA"),
            ("GB",),
            nmea="4.10",
            time_decimals=3,
            minute_decimals=5,
        ),
        ReceiverModel(
            "garmin-18x",
            "Garmin GPS 16x/18x with GLL enabled: RMC, GGA, GSA, GSV, PGRME, GLL, PGRMM; "
            "hhmmss without decimals, ddmm.mmmm",
            "GP",
            ("RMC", "GGA", "GSA", "GSV", "PGRME", "GLL", "PGRMM"),
            ("GP",),
            nmea="2.3",
            time_decimals=0,
            minute_decimals=4,
            speed_decimals=1,
        ),
        ReceiverModel(
            "hemisphere",
            "Hemisphere-class survey receiver configured for GGA, VTG and ZDA without RMC: the "
            "date only in ZDA; 8 decimals of minutes, differential quality 2",
            "GP",
            ("GGA", "VTG", "ZDA"),
            ("GP",),
            nmea="2.3",
            minute_decimals=8,
            speed_decimals=2,
            quality=2,
        ),
        ReceiverModel(
            "legacy-rollover",
            "older GPS unit (4800 Bd) whose firmware dates fall within 1024 weeks of 1999-08-22: "
            "after the April 2019 rollover it reports 2019-04-07 as 1999-08-22; RMC, GGA, GSA",
            "GP",
            ("RMC", "GGA", "GSA"),
            ("GP",),
            nmea="2.1",
            time_decimals=0,
            minute_decimals=4,
            speed_decimals=1,
            era_start=date(1999, 8, 22),
            baud=4800,
        ),
        ReceiverModel(
            "legacy-no-checksum",
            "older GPS unit (NMEA 2.0, 4800 Bd): checksum only on RMC, where the standard "
            "requires it; GGA, GSA, GLL without one",
            "GP",
            ("RMC", "GGA", "GSA", "GLL"),
            ("GP",),
            nmea="2.0",
            time_decimals=0,
            minute_decimals=4,
            speed_decimals=1,
            no_checksum=frozenset({"GGA", "GSA", "GLL"}),
            baud=4800,
        ),
    )
}


def reported_date(model: ReceiverModel, day: date) -> date:
    """The date the receiver prints for a true `day`: a firmware past its week rollover counts
    weeks from its pivot, so it reports a date whole 1024-week eras early."""
    if model.era_start is None:
        return day
    while day >= model.era_start + ERA:
        day -= ERA
    return day


def _reported(model: ReceiverModel, epoch: TruthEpoch) -> tuple[date, float]:
    """The (date, seconds of day) the receiver prints for an epoch."""
    if epoch.state == "restart":
        moment = epoch.utc - timedelta(seconds=epoch.step_back_s)
        seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
        return reported_date(model, moment.date()), seconds + moment.microsecond / 1e6
    return reported_date(model, epoch.day), float(epoch.second_of_day)


def _time_field(model: ReceiverModel, seconds: float) -> str:
    scale = 10**model.time_decimals
    ticks = round(seconds * scale)
    whole, fraction = divmod(ticks, scale)
    if whole >= DAY_S:  # 23:59:60 of a leap second
        hour, minute, second = 23, 59, 60 + whole - DAY_S
    else:
        hour, rest = divmod(whole, 3600)
        minute, second = divmod(rest, 60)
    text = f"{hour:02d}{minute:02d}{second:02d}"
    return f"{text}.{fraction:0{model.time_decimals}d}" if model.time_decimals else text


def _angle_field(units: int, degree_digits: int, decimals: int) -> str:
    if decimals < 4:
        raise ValueError("positions need at least 4 decimals of minutes")
    degrees, rest = divmod(abs(units), UNITS_PER_DEGREE)
    minutes, fraction = divmod(rest, UNITS_PER_MINUTE)
    return f"{degrees:0{degree_digits}d}{minutes:02d}.{fraction:04d}" + "0" * (decimals - 4)


def _position(model: ReceiverModel, epoch: TruthEpoch) -> str:
    """lat,N,lon,E of an epoch, or four empty fields when the receiver prints none."""
    if epoch.state in ("outage", "restart"):
        return ",,,"
    d = model.minute_decimals
    lat = _angle_field(epoch.lat_units, 2, d)
    lon = _angle_field(epoch.lon_units, 3, d)
    return (
        f"{lat},{'N' if epoch.lat_units >= 0 else 'S'},{lon},{'E' if epoch.lon_units >= 0 else 'W'}"
    )


def _mode(model: ReceiverModel, epoch: TruthEpoch) -> str:
    if not epoch.receiver_valid:
        return "N"
    return "D" if model.quality == 2 else "A"


def epoch_sentences(model: ReceiverModel, epoch: TruthEpoch) -> list[str]:
    """The sentences (with CR LF) the receiver sends for one epoch, in its order."""
    day, seconds = _reported(model, epoch)
    stamp = _time_field(model, seconds)
    out: list[str] = []
    for kind in model.order:
        for body in _bodies(kind, model, epoch, day, stamp):
            if kind in model.no_checksum:
                out.append(f"${body}\r\n")
            else:
                out.append(f"${body}*{checksum(body):02X}\r\n")
    return out


def _bodies(kind: str, model: ReceiverModel, epoch: TruthEpoch, day: date, stamp: str) -> list[str]:
    if kind in ("GGA", "GGA2"):
        return [_gga(kind, model, epoch, stamp, _position(model, epoch))]
    if kind == "GSA":
        return _gsa(model, epoch)
    if kind == "GSV":
        return _gsv(model, epoch)
    if kind in _FIXED:
        return [_FIXED[kind]]
    return [_motion(kind, model, epoch, day, stamp)]


_FIXED = {"PGRME": "PGRME,15.0,M,45.0,M,25.0,M", "PGRMM": "PGRMM,WGS 84"}


def _motion(kind: str, model: ReceiverModel, epoch: TruthEpoch, day: date, stamp: str) -> str:
    """RMC, VTG, GLL and ZDA: position, motion and date in one line each."""
    valid = epoch.receiver_valid
    fixed = epoch.state not in ("outage", "restart")
    mode = _mode(model, epoch)
    tail = f",{mode}" if model.mode_letter else ""
    t = model.talker
    speed = f"{epoch.speed_mps / KNOT_MPS:.{model.speed_decimals}f}" if fixed else ""
    course = f"{epoch.course_deg:.1f}" if fixed else ""
    status = "A" if valid else "V"
    if kind == "RMC":
        rmc = f"{t}RMC,{stamp},{status},{_position(model, epoch)},{speed},{course},"
        rmc += f"{day.strftime('%d%m%y')},,{tail}"
        if model.nmea == "4.10":
            rmc += ",S" if valid else ",V"  # navigational status: safe / not valid
        return rmc
    if kind == "VTG":
        kmh = f"{epoch.speed_mps * 3.6:.{model.speed_decimals}f}" if fixed else ""
        return f"{t}VTG,{course},T,,M,{speed},N,{kmh},K{tail}"
    if kind == "GLL":
        return f"{t}GLL,{_position(model, epoch)},{stamp},{status}{tail}"
    if kind == "ZDA":
        return f"{t}ZDA,{stamp},{day.day:02d},{day.month:02d},{day.year:04d},00,00"
    raise ValueError(f"{model.name}: unknown sentence {kind!r}")


def _gga(kind: str, model: ReceiverModel, epoch: TruthEpoch, stamp: str, position: str) -> str:
    second = kind == "GGA2"
    talker = model.gga_talkers[1 if second else 0] or model.talker
    if model.gga_talkers[0] and not second:
        satellites = epoch.satellites - epoch.second_satellites
    elif second:
        satellites = epoch.second_satellites
    else:
        satellites = epoch.satellites
    quality = model.quality if epoch.receiver_valid else 0
    fixed = epoch.state not in ("outage", "restart")
    hdop = f"{epoch.hdop:.2f}" if epoch.hdop >= 99 else f"{epoch.hdop:.1f}"
    altitude = "45.3,M,-8.2,M" if fixed else ",,,"
    differential = "3.0,0138" if model.quality == 2 and epoch.receiver_valid else ","
    return (
        f"{talker}GGA,{stamp},{position},{quality},{satellites:02d},{hdop},{altitude},"
        f"{differential}"
    )


_SYSTEM_ID = {"GP": 1, "GL": 2, "GA": 3, "GB": 4, "BD": 4}
_FIRST_PRN = {"GP": 1, "GL": 65, "GA": 1, "GB": 1, "BD": 1}


def _used(model: ReceiverModel, epoch: TruthEpoch) -> list[tuple[str, list[int]]]:
    """Satellites in use per constellation (the first system carries all but the second's)."""
    systems = model.constellations
    counts = [0] * len(systems)
    if epoch.receiver_valid:
        counts[0] = epoch.satellites - (epoch.second_satellites if len(systems) > 1 else 0)
        if len(systems) > 1:
            counts[1] = epoch.second_satellites
    return [
        (system, [_FIRST_PRN[system] + 2 * i for i in range(count)])
        for system, count in zip(systems, counts, strict=True)
    ]


def _gsa(model: ReceiverModel, epoch: TruthEpoch) -> list[str]:
    out = []
    per_system = _used(model, epoch)
    if model.talker != "GN":
        per_system = per_system[:1]
    fix_type = "1" if not epoch.receiver_valid else ("2" if epoch.state == "weak" else "3")
    dops = (
        "99.99,99.99,99.99" if epoch.hdop >= 99 else f"{epoch.hdop * 1.6:.1f},{epoch.hdop:.1f},1.5"
    )
    for system, prns in per_system:
        slots = [f"{p:02d}" for p in prns[:12]] + [""] * (12 - min(12, len(prns)))
        tail = f",{_SYSTEM_ID[system]}" if model.nmea == "4.10" else ""
        out.append(f"{model.talker}GSA,A,{fix_type},{','.join(slots)},{dops}{tail}")
    return out


def _gsv(model: ReceiverModel, epoch: TruthEpoch) -> list[str]:
    out = []
    for system, prns in _used(model, epoch):
        in_view = prns + [_FIRST_PRN[system] + 2 * len(prns) + 1 + i for i in range(2)]
        pages = max(1, math.ceil(len(in_view) / 4))
        for page in range(pages):
            sats = in_view[page * 4 : page * 4 + 4]
            entries = ",".join(
                f"{p:02d},{(17 * p) % 80 + 5:02d},{(37 * p) % 360:03d},"
                + (f"{30 + p % 20:02d}" if p in prns else "")
                for p in sats
            )
            out.append(f"{system}GSV,{pages},{page + 1},{len(in_view):02d},{entries}")
    return out


# ---------------------------------------------------------------------------------------------
# On the line.


@dataclass(frozen=True, slots=True)
class Burst:
    """The bytes of one epoch as they leave the receiver, from `start_s` at the line's rate."""

    epoch: int  # index into the track
    start_s: float
    data: bytes
    byte_s: float  # time on the line of one byte
    complete: bool  # False when the receiver reset in the middle of sending it


def transmit(
    model: ReceiverModel, track: Sequence[TruthEpoch], latency_s: float = 0.05
) -> list[Burst]:
    """Each epoch's sentences as a burst `latency_s` after the epoch. The epoch before a restart
    is cut in the middle of a sentence, as a reset leaves it."""
    byte_s = 10.0 / model.baud  # start bit, 8 data bits, stop bit
    bursts = []
    for i, epoch in enumerate(track):
        data = "".join(epoch_sentences(model, epoch)).encode("ascii")
        following = track[i + 1] if i + 1 < len(track) else None
        resets = following is not None and following.state == "restart" and epoch.state != "restart"
        if resets:
            data = data[: len(data) // 2]
        if len(data) * byte_s + latency_s >= 1.0:
            raise ValueError(f"{model.name}: an epoch does not fit in a second at {model.baud} Bd")
        bursts.append(Burst(i, epoch.elapsed_s + latency_s, data, byte_s, not resets))
    return bursts


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one read of the port returns: bytes, and when the last of them arrived."""

    at_s: float
    data: bytes


def per_burst(bursts: Sequence[Burst]) -> list[Chunk]:
    """One read per epoch, after its last byte."""
    return [Chunk(b.start_s + len(b.data) * b.byte_s, b.data) for b in bursts if b.data]


def rechunk(
    bursts: Sequence[Burst], sizes: Sequence[int], max_wait_s: float | None = None
) -> list[Chunk]:
    """The whole stream cut into reads of up to `sizes` bytes (cycled), each dated by its last
    byte. With `max_wait_s` a read returns what came within that long of its first byte (a
    reader keeping up with the port); without, it waits for its size (a reader fallen behind)."""
    if not sizes or min(sizes) < 1:
        raise ValueError("sizes must be positive")
    stream = bytearray()
    times: list[float] = []
    for burst in bursts:
        stream += burst.data
        times.extend(burst.start_s + (k + 1) * burst.byte_s for k in range(len(burst.data)))
    chunks = []
    position = 0
    turn = 0
    while position < len(stream):
        end = min(len(stream), position + sizes[turn % len(sizes)])
        if max_wait_s is not None:
            end = max(position + 1, min(end, bisect_right(times, times[position] + max_wait_s)))
        chunks.append(Chunk(times[end - 1], bytes(stream[position:end])))
        position, turn = end, turn + 1
    return chunks
