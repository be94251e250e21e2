"""Box profiles: a vendor's register map as data, and the pure decoding it describes.

A profile names the block of registers to poll and, per channel, where the value sits, its type,
signedness, word order, scale, unit and "no value" sentinels. One agent serves any box a profile
describes; the simulator serves the same profile from the other side of the line.
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from edge.errors import EnvpatrolError
from edge.modbus import READ_FUNCTIONS, ReadRequest
from edge.units import CHANNELS, UnitError, converter, inverse_converter

RegisterType = Literal["u16", "s16", "u32", "s32", "f32"]
WordOrder = Literal["big", "little"]
_WIDTH: dict[str, int] = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2}


class ProfileError(EnvpatrolError, ValueError):
    """A box profile that cannot be used, with where the problem is."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"box profile {source}", problem)


@dataclass(frozen=True, slots=True)
class LineSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1


@dataclass(frozen=True, slots=True)
class ChannelMap:
    """Where one channel sits in the register block and how to read it."""

    channel: str
    register: int  # absolute register address (0-based, as on the wire)
    type: RegisterType = "u16"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    word_order: WordOrder = "big"
    sentinels: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        return _WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class BoxProfile:
    name: str
    vendor: str
    address: int
    function: int
    start: int
    count: int
    channels: tuple[ChannelMap, ...]
    line: LineSettings = field(default_factory=LineSettings)
    description: str = ""

    @property
    def request(self) -> ReadRequest:
        return ReadRequest(self.address, self.function, self.start, self.count)

    def decode(self, registers: tuple[int, ...] | list[int]) -> DecodedBlock:
        """Turn a register block into canonical values; sentinels become None and are named."""
        if len(registers) != self.count:
            raise ValueError(
                f"profile {self.name} expects {self.count} registers, got {len(registers)}"
            )
        values: dict[str, float | None] = {}
        sentinel: list[str] = []
        for ch in self.channels:
            i = ch.register - self.start
            words = registers[i : i + ch.width]
            raw = _raw_int(words, ch.word_order)
            if raw in ch.sentinels:
                values[ch.channel] = None
                sentinel.append(ch.channel)
                continue
            number = _interpret(raw, ch.type)
            if not math.isfinite(number):
                values[ch.channel] = None
                sentinel.append(ch.channel)
                continue
            values[ch.channel] = round(
                converter(ch.channel, ch.unit)(number * ch.scale + ch.offset), 4
            )
        return DecodedBlock(values, tuple(sentinel))

    def encode(self, values: dict[str, float | None]) -> list[int]:
        """The register block a box would send for these canonical values (for the simulator).

        A missing or None value is sent as the channel's first sentinel (or 0 if it has none);
        values are rounded to the register's resolution and clamped to its range.
        """
        block = [0] * self.count
        for ch in self.channels:
            value = values.get(ch.channel)
            if value is None:
                raw = ch.sentinels[0] if ch.sentinels else 0
            else:
                native = (inverse_converter(ch.channel, ch.unit)(value) - ch.offset) / ch.scale
                raw = _from_number(native, ch.type, ch.sentinels)
            i = ch.register - self.start
            block[i : i + ch.width] = _words(raw, ch.width, ch.word_order)
        return block


@dataclass(frozen=True, slots=True)
class DecodedBlock:
    values: dict[str, float | None]
    sentinel: tuple[str, ...]


def _raw_int(words: tuple[int, ...] | list[int], order: WordOrder) -> int:
    if len(words) == 1:
        return words[0]
    hi, lo = (words[0], words[1]) if order == "big" else (words[1], words[0])
    return (hi << 16) | lo


def _words(raw: int, width: int, order: WordOrder) -> list[int]:
    if width == 1:
        return [raw & 0xFFFF]
    hi, lo = (raw >> 16) & 0xFFFF, raw & 0xFFFF
    return [hi, lo] if order == "big" else [lo, hi]


def _interpret(raw: int, kind: RegisterType) -> float:
    if kind in {"u16", "u32"}:
        return float(raw)
    if kind == "s16":
        return float(raw - 0x10000 if raw & 0x8000 else raw)
    if kind == "s32":
        return float(raw - 0x1_0000_0000 if raw & 0x8000_0000 else raw)
    value: float = struct.unpack(">f", raw.to_bytes(4, "big"))[0]
    return value


_RANGE: dict[str, tuple[int, int]] = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFF_FFFF),
    "s32": (-0x8000_0000, 0x7FFF_FFFF),
}


def _from_number(native: float, kind: RegisterType, sentinels: tuple[int, ...]) -> int:
    if kind == "f32":
        return int.from_bytes(struct.pack(">f", native), "big")
    low, high = _RANGE[kind]
    number = min(max(round(native), low), high)
    mask = 0xFFFF if kind in ("u16", "s16") else 0xFFFF_FFFF
    raw = number & mask
    # A real value that happens to equal a sentinel is sent one step below it.
    while raw in sentinels:
        number -= 1
        raw = number & mask
    return raw


# ---------------------------------------------------------------------------------------------
# Loading


def builtin_profiles() -> list[str]:
    folder = resources.files("edge.profiles")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_profile(name_or_path: str) -> BoxProfile:
    """Load a built-in profile by name, or a profile TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(str(path), f"cannot read: {exc.strerror}") from exc
        return parse_profile(text, str(path))
    resource = resources.files("edge.profiles").joinpath(f"{name_or_path}.toml")
    if not resource.is_file():
        known = ", ".join(builtin_profiles())
        raise ProfileError(name_or_path, f"no such built-in profile (known: {known})")
    return parse_profile(resource.read_text(encoding="utf-8"), name_or_path)


def parse_profile(text: str, source: str = "<string>") -> BoxProfile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, f"not valid TOML: {exc}") from exc
    try:
        return _build(doc, source)
    except (KeyError, TypeError) as exc:
        raise ProfileError(source, f"missing or mistyped field: {exc}") from exc


def _build(doc: dict[str, Any], source: str) -> BoxProfile:
    line_doc = doc.get("line", {})
    line = LineSettings(
        baudrate=int(line_doc.get("baudrate", 9600)),
        bytesize=int(line_doc.get("bytesize", 8)),
        parity=line_doc.get("parity", "N"),
        stopbits=int(line_doc.get("stopbits", 1)),
    )
    if line.parity not in ("N", "E", "O"):
        raise ProfileError(source, f"parity {line.parity!r} is not N, E or O")
    default_order = doc.get("word_order", "big")
    channels = []
    for entry in doc["channels"]:
        sentinels = entry.get("sentinels", entry.get("sentinel", []))
        if isinstance(sentinels, int):
            sentinels = [sentinels]
        ch = ChannelMap(
            channel=str(entry["channel"]),
            register=int(entry["register"]),
            type=entry.get("type", "u16"),
            scale=float(entry.get("scale", 1.0)),
            offset=float(entry.get("offset", 0.0)),
            unit=str(entry.get("unit", "")) or _canonical_unit(str(entry["channel"]), source),
            word_order=entry.get("word_order", default_order),
            sentinels=tuple(int(s) for s in sentinels),
        )
        _check_channel(ch, source)
        channels.append(ch)
    profile = BoxProfile(
        name=str(doc["name"]),
        vendor=str(doc.get("vendor", "")),
        description=str(doc.get("description", "")),
        address=int(doc.get("address", 1)),
        function=int(doc.get("function", 3)),
        start=int(doc["start"]),
        count=int(doc["count"]),
        channels=tuple(channels),
        line=line,
    )
    _check_profile(profile, source)
    return profile


def _canonical_unit(channel: str, source: str) -> str:
    if channel not in CHANNELS:
        raise ProfileError(source, f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
    return CHANNELS[channel].unit


def _check_channel(ch: ChannelMap, source: str) -> None:
    if ch.channel not in CHANNELS:
        raise ProfileError(source, f"unknown channel {ch.channel!r} (known: {', '.join(CHANNELS)})")
    if ch.type not in _WIDTH:
        raise ProfileError(source, f"channel {ch.channel}: unknown type {ch.type!r}")
    if ch.word_order not in ("big", "little"):
        raise ProfileError(source, f"channel {ch.channel}: word_order must be big or little")
    if ch.scale == 0:
        raise ProfileError(source, f"channel {ch.channel}: scale must not be 0")
    try:
        converter(ch.channel, ch.unit)
    except UnitError as exc:
        raise ProfileError(source, str(exc)) from exc


def _check_profile(profile: BoxProfile, source: str) -> None:
    if profile.function not in READ_FUNCTIONS:
        raise ProfileError(source, f"function {profile.function} is not 3 or 4")
    try:
        _ = profile.request
    except ValueError as exc:
        raise ProfileError(source, str(exc)) from exc
    seen: dict[int, str] = {}
    names: set[str] = set()
    for ch in profile.channels:
        if ch.channel in names:
            raise ProfileError(source, f"channel {ch.channel} is mapped twice")
        names.add(ch.channel)
        for reg in range(ch.register, ch.register + ch.width):
            if not profile.start <= reg < profile.start + profile.count:
                raise ProfileError(
                    source,
                    f"channel {ch.channel} at register {reg} lies outside the polled block "
                    f"{profile.start}..{profile.start + profile.count - 1}",
                )
            if reg in seen:
                raise ProfileError(
                    source, f"channels {seen[reg]} and {ch.channel} overlap at {reg}"
                )
            seen[reg] = ch.channel
