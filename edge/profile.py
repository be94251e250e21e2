"""Box profiles: a vendor's register map as data, and the pure decoding it describes.

A profile names the block of registers to poll and, per channel, where the value sits, its type,
signedness, word order, scale, unit and "no value" sentinels. One agent serves any box a profile
describes; the simulator serves the same profile from the other side of the line.
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from edge.errors import EnvpatrolError
from edge.modbus import READ_FUNCTIONS, ReadRequest
from edge.units import CHANNELS, UnitError, converter, inverse_converter

RegisterType = Literal["u16", "s16", "u32", "s32", "f32"]
WordOrder = Literal["big", "little"]
_WIDTH: dict[str, int] = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2}

# How an identity register field reads as text: "ascii" two characters per register (high byte
# first), "u16"/"u32" a decimal number, "version" one register as major.minor (high, low byte).
IdentityType = Literal["ascii", "u16", "u32", "version"]
IDENTITY_FIELDS = ("model", "serial", "firmware")


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
class BoxIdentity:
    """Who a box says it is. Two boxes are the same box when model and serial agree; the
    firmware may change under an update and is only reported."""

    model: str
    serial: str
    firmware: str = ""

    def same_box(self, other: BoxIdentity) -> bool:
        return (self.model, self.serial) == (other.model, other.serial)

    def as_dict(self) -> dict[str, str]:
        return {"model": self.model, "serial": self.serial, "firmware": self.firmware}

    def __str__(self) -> str:
        text = f"model {self.model!r} serial {self.serial!r}"
        return f"{text} firmware {self.firmware!r}" if self.firmware else text


@dataclass(frozen=True, slots=True)
class IdentityField:
    """Where one identity field sits and how it reads as text."""

    name: str  # model, serial or firmware
    register: int
    type: IdentityType = "ascii"
    length: int = 1  # registers (ascii only; the other types have a fixed width)
    word_order: WordOrder = "big"

    @property
    def width(self) -> int:
        if self.type == "ascii":
            return self.length
        return 2 if self.type == "u32" else 1

    def decode(self, words: tuple[int, ...]) -> str:
        if self.type == "ascii":
            raw = b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0 ")
            # Printable text passes; any other byte (and the backslash) is shown as an escape,
            # never dropped, so unreadable registers still tell two boxes apart.
            return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)
        if self.type == "version":
            return f"{words[0] >> 8}.{words[0] & 0xFF}"
        return str(_raw_int(words, self.word_order))

    def encode(self, text: str) -> list[int]:
        """The registers a box holds for `text` (for the simulator); ValueError if it does not
        fit."""
        if self.type == "ascii":
            data = text.encode("ascii")
            if len(data) > 2 * self.length:
                raise ValueError(f"{self.name} {text!r} is longer than {2 * self.length} chars")
            data = data.ljust(2 * self.length, b"\0")
            return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        if self.type == "version":
            major, _, minor = text.partition(".")
            number = (int(major) << 8) | int(minor or 0)
            if not 0 <= int(major) <= 0xFF or not 0 <= int(minor or 0) <= 0xFF:
                raise ValueError(f"{self.name} {text!r} is not major.minor within 0..255")
            return [number]
        number = int(text)
        if not 0 <= number < 1 << (16 * self.width):
            raise ValueError(f"{self.name} {text!r} does not fit a {self.type}")
        return _words(number, self.width, self.word_order)


@dataclass(frozen=True, slots=True)
class IdentityMap:
    """The block of registers that says which box answers: model, serial number, firmware.

    Read once on every (re)open of the port, with its own request; a box answers it from the
    same device address as the readings."""

    function: int
    start: int
    count: int
    fields: tuple[IdentityField, ...]

    def request(self, address: int) -> ReadRequest:
        return ReadRequest(address, self.function, self.start, self.count)

    def decode(self, registers: tuple[int, ...] | list[int]) -> BoxIdentity:
        if len(registers) != self.count:
            raise ValueError(f"identity block of {self.count} registers, got {len(registers)}")
        text = dict.fromkeys(IDENTITY_FIELDS, "")
        for f in self.fields:
            i = f.register - self.start
            text[f.name] = f.decode(tuple(registers[i : i + f.width]))
        return BoxIdentity(text["model"], text["serial"], text["firmware"])

    def encode(self, identity: BoxIdentity) -> list[int]:
        block = [0] * self.count
        text = identity.as_dict()
        for f in self.fields:
            i = f.register - self.start
            block[i : i + f.width] = f.encode(text[f.name])
        return block

    def field(self, name: str) -> IdentityField | None:
        return next((f for f in self.fields if f.name == name), None)


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
    identity: IdentityMap | None = None  # None: the box cannot say who it is

    @property
    def request(self) -> ReadRequest:
        return ReadRequest(self.address, self.function, self.start, self.count)

    @property
    def identity_request(self) -> ReadRequest | None:
        return None if self.identity is None else self.identity.request(self.address)

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
    if "identity" in doc:
        profile = replace(profile, identity=_identity(doc["identity"], profile, source))
    return profile


def _identity(doc: Any, profile: BoxProfile, source: str) -> IdentityMap:
    if not isinstance(doc, dict):
        raise ProfileError(source, "identity must be a table")
    unknown = sorted(set(doc) - {"function", "start", "count", *IDENTITY_FIELDS})
    if unknown:
        raise ProfileError(source, f"identity: unknown key {unknown[0]!r}")
    fields = tuple(
        _identity_field(name, doc[name], source) for name in IDENTITY_FIELDS if name in doc
    )
    if not any(f.name == "serial" for f in fields):
        raise ProfileError(source, "identity needs at least the serial register")
    identity = IdentityMap(
        function=int(doc.get("function", profile.function)),
        start=int(doc["start"]),
        count=int(doc["count"]),
        fields=fields,
    )
    _check_identity(identity, profile, source)
    return identity


def _identity_field(name: str, entry: Any, source: str) -> IdentityField:
    if not isinstance(entry, dict):
        raise ProfileError(source, f"identity.{name} must be a table {{register = ...}}")
    kind = entry.get("type", "ascii")
    if kind not in ("ascii", "u16", "u32", "version"):
        raise ProfileError(source, f"identity.{name}: unknown type {kind!r}")
    order = entry.get("word_order", "big")
    if order not in ("big", "little"):
        raise ProfileError(source, f"identity.{name}: word_order must be big or little")
    length = int(entry.get("length", 1))
    if length < 1:
        raise ProfileError(source, f"identity.{name}: length must be at least 1")
    return IdentityField(name, int(entry["register"]), kind, length, order)


def _check_identity(identity: IdentityMap, profile: BoxProfile, source: str) -> None:
    if identity.function not in READ_FUNCTIONS:
        raise ProfileError(source, f"identity: function {identity.function} is not 3 or 4")
    try:
        request = identity.request(profile.address)
    except ValueError as exc:
        raise ProfileError(source, f"identity: {exc}") from exc
    # Modbus RTU answers do not say which request they answer: an identity answer of the
    # readings' shape could be taken for readings when it comes late, and the other way round.
    if (request.function, request.count) == (profile.function, profile.count):
        raise ProfileError(
            source, "identity block must differ from the readings' block in function or count"
        )
    seen: dict[int, str] = {}
    for f in identity.fields:
        for reg in range(f.register, f.register + f.width):
            if not identity.start <= reg < identity.start + identity.count:
                raise ProfileError(
                    source,
                    f"identity.{f.name} at register {reg} lies outside the identity block "
                    f"{identity.start}..{identity.start + identity.count - 1}",
                )
            if reg in seen:
                raise ProfileError(source, f"identity.{seen[reg]} and {f.name} overlap at {reg}")
            seen[reg] = f.name


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
