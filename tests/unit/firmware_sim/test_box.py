"""The simulated box says who it is: identity registers per vehicle, answered apart from the
readings (no fault, no truth record), so a vehicle's faults and truth stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge.modbus import ReadRequest, decode_response, encode_read_response
from edge.profile import BoxIdentity, BoxProfile, builtin_profiles, load_profile
from firmware_sim.box import Served, SimulatedBox, box_identity
from firmware_sim.faults import FaultPlan, FaultSpec

PROFILES = [load_profile(name) for name in builtin_profiles()]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_each_vehicle_s_box_has_its_own_serial_and_keeps_it(profile: BoxProfile) -> None:
    names = [f"patrol-{i:02d}" for i in range(50)]
    serials = [box_identity(profile, name).serial for name in names]
    assert len(set(serials)) == len(names)
    assert serials == [box_identity(profile, name).serial for name in names]
    assert profile.identity is not None
    for name in names:  # what a box serves reads back as the identity it was given
        identity = box_identity(profile, name)
        decoded = profile.identity.decode(profile.identity.encode(identity))
        assert decoded.same_box(identity)


def test_a_given_serial_is_served_and_one_that_does_not_fit_is_refused() -> None:
    profile = load_profile("default-multi")
    assert box_identity(profile, "p1", "EP-7").serial == "EP-7"
    with pytest.raises(ValueError, match="longer than 16"):
        box_identity(profile, "p1", "X" * 17)


def test_the_box_answers_who_it_is_outside_its_fault_plan_and_truth() -> None:
    profile = load_profile("default-multi")
    served: list[Served] = []
    identity = BoxIdentity("EP-SIM", "EP0123", "2.1")
    box = SimulatedBox(
        profile,
        lambda: (datetime(2026, 3, 2, tzinfo=UTC), {}),
        served.append,
        faults=FaultPlan(FaultSpec(drop=1.0), seed=1),
        identity=identity,
    )
    try:
        request = profile.identity_request
        assert request is not None
        assert profile.identity is not None
        answer = box.answer(request)
        expected = encode_read_response(1, 3, profile.identity.encode(identity))
        assert answer == expected
        frame = decode_response(answer, request).frame
        assert frame is not None
        assert profile.identity.decode(getattr(frame, "registers", ())) == identity
        assert served == []
        assert box.answer(profile.request) == b""  # the readings are dropped as planned
    finally:
        box.pty.close()


def test_a_request_for_other_registers_is_refused() -> None:
    profile = load_profile("default-multi")
    box = SimulatedBox(profile, lambda: (datetime(2026, 3, 2, tzinfo=UTC), {}))
    try:
        answer = box.answer(ReadRequest(1, 3, 200, 4))
        assert answer[1] == 0x83  # illegal data address
    finally:
        box.pty.close()
