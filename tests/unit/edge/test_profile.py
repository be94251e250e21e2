"""Box profiles: every built-in profile round-trips, bad profiles are refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.profile import (
    BoxIdentity,
    BoxProfile,
    ProfileError,
    builtin_profiles,
    load_profile,
    parse_profile,
)
from edge.units import CHANNELS, converter, inverse_converter

PROFILES = [load_profile(name) for name in builtin_profiles()]


def test_default_profile_covers_every_module() -> None:
    profile = load_profile("default-multi")
    assert {c.channel for c in profile.channels} == set(CHANNELS)
    assert (profile.line.baudrate, profile.line.parity) == (9600, "N")


def _values(profile: BoxProfile) -> st.SearchStrategy[dict[str, float | None]]:
    return st.fixed_dictionaries(
        {
            c.channel: st.one_of(
                st.none(),
                st.floats(0.0, 500.0, allow_nan=False).map(
                    lambda v, c=c: converter(c.channel, c.unit)(round(v / c.scale) * c.scale)  # type: ignore[misc]
                ),
            )
            for c in profile.channels
        }
    )


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(data=st.data())
def test_profile_round_trip(profile: BoxProfile, data: st.DataObject) -> None:
    values = data.draw(_values(profile))
    registers = profile.encode(values)
    assert len(registers) == profile.count
    assert all(0 <= r <= 0xFFFF for r in registers)
    decoded = profile.decode(registers)
    for channel, value in values.items():
        if value is None:
            assert decoded.values[channel] is None
            assert channel in decoded.sentinel
        else:
            got = decoded.values[channel]
            assert got is not None
            assert got == pytest.approx(value, rel=1e-5, abs=1e-3)
    # Encoding the decoded values again gives the same registers.
    assert profile.encode(decoded.values) == registers


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(data=st.data())
def test_any_register_block_decodes_without_error(profile: BoxProfile, data: st.DataObject) -> None:
    block = data.draw(
        st.lists(st.integers(0, 0xFFFF), min_size=profile.count, max_size=profile.count)
    )
    decoded = profile.decode(block)
    assert set(decoded.values) == {c.channel for c in profile.channels}


def test_signed_temperature_and_sentinel() -> None:
    profile = load_profile("default-multi")
    block = [0] * profile.count
    block[0] = 0xFFE0  # -3.2 degC
    block[1] = 0xFFFF  # humidity module missing
    decoded = profile.decode(block)
    assert decoded.values["temperature"] == pytest.approx(-3.2)
    assert decoded.values["humidity"] is None
    assert "humidity" in decoded.sentinel


def test_gas_conversion_at_25c() -> None:
    assert converter("no2", "ppb")(1.0) == pytest.approx(1.880, abs=1e-3)
    assert converter("co", "ppm")(1.0) == pytest.approx(1.145, abs=1e-3)
    assert converter("so2", "ppb")(1.0) == pytest.approx(2.619, abs=1e-3)
    assert inverse_converter("no2", "ppb")(converter("no2", "ppb")(37.0)) == pytest.approx(37.0)


BASE = """
name = "x"
start = 0
count = 4
"""


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('[[channels]]\nchannel = "radon"\nregister = 0\n', "unknown channel"),
        ('[[channels]]\nchannel = "pm25"\nregister = 9\n', "outside the polled block"),
        (
            '[[channels]]\nchannel = "pm25"\nregister = 0\ntype = "f32"\n'
            '[[channels]]\nchannel = "pm10"\nregister = 1\n',
            "overlap",
        ),
        ('[[channels]]\nchannel = "no2"\nregister = 0\nunit = "furlongs"\n', "cannot convert"),
        ('[[channels]]\nchannel = "pm25"\nregister = 0\ntype = "u64"\n', "unknown type"),
    ],
)
def test_bad_profiles_are_refused(extra: str, problem: str) -> None:
    with pytest.raises(ProfileError, match=problem):
        parse_profile(BASE + extra, "test.toml")


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="default-multi"):
        load_profile("no-such-box")


# ---------------------------------------------------------------------------------------------
# Identity registers

IDENTIFIED = [p for p in PROFILES if p.identity is not None]


def _field_text(kind: str, length: int) -> st.SearchStrategy[str]:
    if kind == "ascii":
        # Trailing spaces are padding to a box, as are NULs.
        alphabet = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\")
        return st.text(alphabet, min_size=1, max_size=2 * length)
    if kind == "version":
        return st.tuples(st.integers(0, 255), st.integers(0, 255)).map(lambda v: f"{v[0]}.{v[1]}")
    return st.integers(0, 0xFFFF if kind == "u16" else 0xFFFF_FFFF).map(str)


def test_every_builtin_profile_names_its_identity_registers() -> None:
    assert [p.name for p in IDENTIFIED] == [p.name for p in PROFILES]


@pytest.mark.parametrize("profile", IDENTIFIED, ids=lambda p: p.name)
@given(data=st.data())
def test_identity_round_trip(profile: BoxProfile, data: st.DataObject) -> None:
    identity_map = profile.identity
    assert identity_map is not None
    text = {f.name: data.draw(_field_text(f.type, f.length)) for f in identity_map.fields}
    identity = BoxIdentity(text.get("model", ""), text["serial"], text.get("firmware", ""))
    registers = identity_map.encode(identity)
    assert len(registers) == identity_map.count
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert identity_map.decode(registers) == identity


@pytest.mark.parametrize("profile", IDENTIFIED, ids=lambda p: p.name)
@given(data=st.data())
def test_any_identity_block_reads_as_printable_text(
    profile: BoxProfile, data: st.DataObject
) -> None:
    identity_map = profile.identity
    assert identity_map is not None
    count = identity_map.count
    block = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count))
    identity = identity_map.decode(block)
    assert all(v.isprintable() for v in identity.as_dict().values())
    # registers that differ in the serial read as different serials
    serial = identity_map.field("serial")
    assert serial is not None
    other = list(block)
    i = serial.register - identity_map.start
    other[i] = block[i] ^ 0x0101
    assert identity_map.decode(other).serial != identity.serial


def test_the_same_box_is_model_and_serial_whatever_its_firmware() -> None:
    box = BoxIdentity("EP-SIM", "EP01", "1.0")
    assert box.same_box(BoxIdentity("EP-SIM", "EP01", "1.1"))
    assert not box.same_box(BoxIdentity("EP-SIM", "EP02", "1.0"))
    assert not box.same_box(BoxIdentity("EP-OTHER", "EP01", "1.0"))


IDENTITY_BASE = BASE + '[[channels]]\nchannel = "pm25"\nregister = 0\n[identity]\n'


@pytest.mark.parametrize(
    ("identity", "problem"),
    [
        ("start = 10\ncount = 3\nmodel = { register = 10 }\n", "at least the serial"),
        ("start = 10\ncount = 2\nserial = { register = 11, type = 'u32' }\n", "outside"),
        (
            "start = 10\ncount = 3\nserial = { register = 10, length = 2 }\n"
            "firmware = { register = 11, type = 'version' }\n",
            "overlap",
        ),
        ("start = 0\ncount = 4\nserial = { register = 0 }\n", "differ from the readings"),
        ("start = 0\ncount = 4\nfunction = 6\nserial = { register = 0 }\n", "not 3 or 4"),
        ("start = 10\ncount = 3\nserial = { register = 10, type = 'bcd' }\n", "unknown type"),
        ("start = 10\ncount = 3\nserial = { register = 10 }\nvendor = 1\n", "unknown key"),
        ("start = 10\ncount = 200\nserial = { register = 10 }\n", "not readable"),
    ],
)
def test_bad_identity_maps_are_refused(identity: str, problem: str) -> None:
    with pytest.raises(ProfileError, match=problem):
        parse_profile(IDENTITY_BASE + identity, "test.toml")


def test_an_identity_block_of_another_function_may_share_the_readings_count() -> None:
    profile = parse_profile(
        IDENTITY_BASE + "function = 4\nstart = 0\ncount = 4\nserial = { register = 0 }\n"
    )
    assert profile.identity_request is not None
    assert profile.identity_request.function == 4
