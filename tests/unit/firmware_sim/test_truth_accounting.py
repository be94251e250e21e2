"""Laying an agent's discards over the bytes the simulated box served: which answer each
reading was made from, which were discarded, which were never read; and the box reporting the
bytes it wrote."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge.box import Discard
from edge.modbus import ReadRequest, encode_read_response
from edge.profile import load_profile
from firmware_sim.box import Served, SimulatedBox
from firmware_sim.faults import FaultPlan, FaultSpec
from firmware_sim.truth import Accounting, AccountingError, account

PROFILE = load_profile("default-multi")


def answer(n: int) -> bytes:
    return encode_read_response(PROFILE.address, PROFILE.function, [n] * PROFILE.count)


A, B, C, D = (answer(n) for n in range(4))


def test_readings_and_discards_in_order_and_the_rest_unread() -> None:
    # A taken, B came late and was discarded before the next request, C taken, D never read
    discards = [Discard("stale", B, 1)]
    assert account([A, B, C, D], discards, 2) == Accounting(
        taken=(0, 2), discarded=(1,), unread=(3,), partial=0
    )


def test_an_answer_split_across_discards_is_one_discarded_answer() -> None:
    discards = [Discard("short", B[:5], 1), Discard("stale", B[5:], 1)]
    assert account([A, B, C], discards, 2) == Accounting((0, 2), (1,), ())


def test_garbage_the_box_sent_before_a_frame_is_discarded_and_the_frame_taken() -> None:
    noisy = b"\x13\x37" + B
    assert account([A, noisy], [Discard("skipped", b"\x13\x37", 1)], 2).taken == (0, 1)


def test_an_unread_tail_may_start_within_an_answer() -> None:
    accounting = account([A, B, C], [Discard("short", B[:9], 1)], 1)
    assert accounting == Accounting(taken=(0,), discarded=(), unread=(1, 2), partial=9)


def test_a_late_identity_answer_discarded_between_answers_counts_as_none_of_them() -> None:
    identity = encode_read_response(PROFILE.address, PROFILE.function, [0x4550] * 30)
    discards = [Discard("stale", identity + B, 1), Discard("skipped", identity, 2)]
    assert account([A, B, C], discards, 2, identity) == Accounting((0, 2), (1,), ())
    with pytest.raises(AccountingError, match="where answer 1 from byte 0"):
        account([A, B, C], discards, 2)


def test_the_simulated_box_answers_the_identity_request_with_its_identity_answer() -> None:
    box = SimulatedBox(PROFILE, lambda: (datetime(2026, 3, 2, tzinfo=UTC), {}))
    try:
        request = PROFILE.identity_request
        assert request is not None
        assert box.answer(request) == box.identity_answer()
    finally:
        box.pty.close()


@pytest.mark.parametrize(
    ("served", "discards", "accepted", "problem"),
    [
        ([A, B], [Discard("stale", C, 1)], 1, "where answer 1 from byte 0"),
        ([A], [Discard("stale", B, 1)], 1, r"beyond the 1 answer\(s\) served"),
        ([A], [], 2, r"accepted beyond the 1 answer\(s\) served"),
        ([A, B], [Discard("stale", B[:4], 1)], 2, "no whole frame to accept"),
        ([A, B], [Discard("stale", B, 3)], 1, r"only 1 answer\(s\) accepted"),
    ],
)
def test_a_record_that_does_not_fit_says_where(
    served: list[bytes], discards: list[Discard], accepted: int, problem: str
) -> None:
    with pytest.raises(AccountingError, match=problem):
        account(served, discards, accepted)


@pytest.mark.parametrize("fault", ["garbage", "crc", "late"])
def test_the_box_reports_the_bytes_it_writes_faults_and_all(fault: str) -> None:
    spec = FaultSpec(**{fault: 1.0}, late_s=0.0)  # type: ignore[arg-type]
    served: list[Served] = []
    box = SimulatedBox(
        PROFILE,
        lambda: (datetime(2026, 3, 2, tzinfo=UTC), {}),
        served.append,
        faults=FaultPlan(spec, seed=5),
    )
    try:
        request = ReadRequest(PROFILE.address, PROFILE.function, PROFILE.start, PROFILE.count)
        sent = box.answer(request)
    finally:
        box.pty.close()
    assert [s.fault for s in served] == [fault]
    assert served[0].frame == sent
    clean = encode_read_response(PROFILE.address, PROFILE.function, served[0].registers)
    assert (sent == clean) is (fault == "late")
