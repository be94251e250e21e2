"""A Scenario written out as a scenario file (TOML) that `parse_scenario` reads back equal.

Only keys the scenario parser accepts are written (docs/scenarios.md), and a value equal to the
parser's default is left out: the built-in background levels, sensor models, GPS and fault
settings appear only where the scenario changes them. Routes are written as they are held:
inline points, a built-in name, or a file path (resolved, as any path in a scenario file,
against the folder of the file it is written to). A value the file syntax cannot carry (a
schedule window or shift time off the whole minute or second, a start without a UTC offset, a
sensor model's floor) raises ScenarioWriteError rather than being written differently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta, timezone

from edge.errors import EnvpatrolError
from firmware_sim.faults import ChannelWindow, FaultSpec
from firmware_sim.field import BACKGROUND, MEAL_TIMES, Schedule, Source
from firmware_sim.gps_model import GpsSpec
from firmware_sim.motion import SpeedProfile
from firmware_sim.scenario import BackgroundSpec, RouteSpec, Scenario, ShiftSpec, VehicleSpec
from firmware_sim.sensor import DEFAULT_SENSORS, SensorSpec

__all__ = ["ScenarioWriteError", "dump_scenario"]


class ScenarioWriteError(EnvpatrolError, ValueError):
    """A scenario value a scenario file cannot carry; `subject` is its key."""


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as scenario-file TOML."""
    out: list[str] = []
    top: dict[str, object] = {"name": scenario.name}
    if scenario.description:
        top["description"] = scenario.description
    top["seed"] = scenario.seed
    out.extend(_pairs(top))
    out.append(f"start = {_datetime(scenario.start, scenario.timezone_h)}")
    out.extend(_pairs({"duration_h": scenario.duration_h, "timezone_h": scenario.timezone_h}))
    for route in scenario.routes.values():
        out.extend(["", "[[routes]]", *_route(route)])
    for i, vehicle in enumerate(scenario.vehicles):
        out.extend(["", "[[vehicles]]", *_vehicle(vehicle, f"vehicles[{i}]")])
    out.extend(_background(scenario.background))
    for i, source in enumerate(scenario.sources):
        out.extend(["", "[[sources]]", *_source(source, f"sources[{i}]")])
    out.extend(_sensors(scenario.sensors))
    out.extend(_gps(scenario.gps))
    out.extend(_faults(scenario.faults))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Values


def _string(text: str) -> str:
    """A TOML basic string."""
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
    escapes["\r"] = "\\r"
    parts = []
    for ch in text:
        if ch in escapes:
            parts.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(ch)
    return '"' + "".join(parts) + '"'


def _number(value: float) -> str:
    if isinstance(value, bool):
        raise TypeError("a flag is not a number")
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))  # repr round-trips every float exactly


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r}")


def _pairs(fields: Mapping[str, object]) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in fields.items()]


def _datetime(moment: datetime, timezone_h: float) -> str:
    """An offset date-time in the scenario's local time (UTC when that offset is not a whole
    minute)."""
    if moment.tzinfo is None:
        raise ScenarioWriteError("start", "needs a UTC offset")
    minutes = timezone_h * 60
    if minutes == int(minutes) and abs(minutes) < 24 * 60:
        moment = moment.astimezone(timezone(timedelta(minutes=int(minutes))))
    return moment.isoformat()


def _clock(moment: time, key: str) -> str:
    """A local time as 'HH:MM' (or 'HH:MM:SS')."""
    if moment.microsecond or moment.tzinfo is not None:
        raise ScenarioWriteError(key, f"{moment} is not a whole second of local time")
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def _hour(hours: float, key: str) -> str:
    """A schedule's hour (h + m / 60) as 'HH:MM', exactly as the parser reads it back."""
    h = int(hours)
    m = round((hours - h) * 60)
    if not 0 <= h < 24 or not 0 <= m < 60 or h + m / 60 != hours:
        raise ScenarioWriteError(key, f"{hours!r} h is not a whole minute of the day")
    return f"{h:02d}:{m:02d}"


def _changed(value: object, default: object, fields: Iterable[str]) -> dict[str, object]:
    """The fields of a settings object that differ from its default, pairs as lists."""
    out: dict[str, object] = {}
    for name in fields:
        mine = getattr(value, name)
        if mine != getattr(default, name):
            out[name] = list(mine) if isinstance(mine, tuple) else mine
    return out


# ---------------------------------------------------------------------------------------------
# Tables


def _route(route: RouteSpec) -> list[str]:
    key = f"routes.{route.name}"
    given = [route.builtin is not None, route.file is not None, route.points is not None]
    if sum(given) != 1:
        raise ScenarioWriteError(key, "needs exactly one of builtin, file or points")
    lines = [f"name = {_string(route.name)}"]
    if route.builtin is not None:
        lines.append(f"builtin = {_string(route.builtin)}")
    elif route.file is not None:
        lines.append(f"file = {_string(str(route.file))}")
        if route.format is not None:
            lines.append(f"format = {_string(route.format)}")
    else:
        points = route.points or ()
        lines.append("points = [")
        lines.extend(f"  [{_number(lat)}, {_number(lon)}]," for lat, lon in points)
        lines.append("]")
    if route.closed:
        lines.append("closed = true")
    return lines


def _vehicle(vehicle: VehicleSpec, key: str) -> list[str]:
    fields: dict[str, object] = {
        "name": vehicle.name,
        "route": vehicle.route,
        "profile": vehicle.profile,
    }
    if vehicle.box_serial is not None:
        fields["box_serial"] = vehicle.box_serial
    if vehicle.offset_m:
        fields["offset_m"] = vehicle.offset_m
    lines = _pairs(fields)
    speed = _changed(vehicle.speed, SpeedProfile(), SpeedProfile.__dataclass_fields__)
    if speed:
        lines.extend(["[vehicles.speed]", *_pairs(speed)])
    for i, shift in enumerate(vehicle.shifts):
        lines.extend(["[[vehicles.shifts]]", *_shift(shift, f"{key}.shifts[{i}]")])
    return lines


def _shift(shift: ShiftSpec, key: str) -> list[str]:
    lines = [
        f"start = {_string(_clock(shift.start, f'{key}.start'))}",
        f"end = {_string(_clock(shift.end, f'{key}.end'))}",
    ]
    optional: dict[str, object] = {}
    if shift.weekdays is not None:
        optional["weekdays"] = list(shift.weekdays)
    if shift.share != 1.0:
        optional["share"] = shift.share
    if shift.jitter_min:
        optional["jitter_min"] = shift.jitter_min
    if shift.routes:
        optional["routes"] = list(shift.routes)
    return lines + _pairs(optional)


def _background(background: BackgroundSpec) -> list[str]:
    missing = sorted(set(BACKGROUND) - set(background.levels))
    if missing:
        raise ScenarioWriteError(f"background.levels.{missing[0]}", "every channel needs a level")
    fields = _changed(background, BackgroundSpec(), ("diurnal", "variability", "correlation_h"))
    levels = {ch: v for ch, v in background.levels.items() if BACKGROUND.get(ch) != v}
    lines = ["", "[background]", *_pairs(fields)] if fields or levels else []
    if levels:
        lines.extend(["[background.levels]", *_pairs(levels)])
    return lines


def _source(source: Source, key: str) -> list[str]:
    lines = [f"name = {_string(source.name)}", f"kind = {_string(source.kind)}"]
    if source.end is None:
        lines.append(f"at = {_value([source.lat, source.lon])}")
    else:
        lines.append(f"line = {_value([(source.lat, source.lon), source.end])}")
    if source.radius_m:
        lines.append(f"radius_m = {_number(source.radius_m)}")
    lines.append(f"decay_m = {_number(source.decay_m)}")
    lines.append(f"schedule = {_schedule(source.schedule, f'{key}.schedule')}")
    lines.extend(["[sources.amplitude]", *_pairs(source.amplitude)])
    return lines


def _schedule(schedule: Schedule, key: str) -> str:
    """The schedule's string form when that says it all, else an inline table of the fields its
    kind uses."""
    days = [f"days = {_number(schedule.days)}"] if schedule.days != 1.0 else []
    fields: list[str] = []
    if schedule.kind == "meals":
        if schedule.windows != MEAL_TIMES:
            windows = ", ".join(
                f"[{_string(_hour(a, f'{key}.windows'))}, {_string(_hour(b, f'{key}.windows'))}]"
                for a, b in schedule.windows
            )
            fields.append(f"windows = [{windows}]")
    elif schedule.kind == "share":
        fields = [
            f"share = {_number(schedule.share)}",
            f"window_min = {_number(schedule.window_min)}",
        ]
    if not fields and not days:
        return _string(schedule.kind)
    return "{ " + ", ".join([f"kind = {_string(schedule.kind)}", *fields, *days]) + " }"


def _sensors(sensors: Mapping[str, SensorSpec]) -> list[str]:
    missing = sorted(set(DEFAULT_SENSORS) - set(sensors))
    if missing:
        raise ScenarioWriteError(f"sensors.{missing[0]}", "every default module must be kept")
    lines: list[str] = []
    names = ("t90_s", "delay_s", "noise", "drift_per_h", "quantum", "warmup_s")
    for ch, spec in sensors.items():
        base = DEFAULT_SENSORS.get(ch, SensorSpec())
        if spec.floor != base.floor:
            raise ScenarioWriteError(f"sensors.{ch}.floor", "is not a scenario-file key")
        fields = _changed(spec, base, names)
        if fields:
            lines.extend(["", f"[sensors.{ch}]", *_pairs(fields)])
    return lines


def _gps(gps: GpsSpec) -> list[str]:
    names = [n for n in GpsSpec.__dataclass_fields__ if n != "dropout_zones"]
    fields = _changed(gps, GpsSpec(), names)
    if not fields and not gps.dropout_zones:
        return []
    lines = ["", "[gps]", *_pairs(fields)]
    for zone in gps.dropout_zones:
        lines.extend(
            [
                "[[gps.dropout_zones]]",
                f"at = {_value([zone.lat, zone.lon])}",
                f"radius_m = {_number(zone.radius_m)}",
            ]
        )
    return lines


def _faults(faults: FaultSpec) -> list[str]:
    names = ("drop", "late", "crc", "garbage", "late_s")
    fields = _changed(faults, FaultSpec(), names)
    if not fields and not faults.stuck and not faults.sentinel:
        return []
    lines = ["", "[faults]", *_pairs(fields)]
    for name, windows in (("stuck", faults.stuck), ("sentinel", faults.sentinel)):
        lines.extend(line for w in windows for line in _window(name, w))
    return lines


def _window(name: str, window: ChannelWindow) -> list[str]:
    return [
        f"[[faults.{name}]]",
        f"channel = {_string(window.channel)}",
        f"hours = {_value([window.start_h, window.end_h])}",
    ]
