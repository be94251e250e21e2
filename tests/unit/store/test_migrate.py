"""The backend decision: every choice on every kind of server and database, without a server."""

from __future__ import annotations

import itertools

import pytest

from store.migrate import (
    BACKEND_CHOICES,
    Backend,
    BackendChoice,
    BackendError,
    Decision,
    ServerFacts,
    decide,
)

NONE = ServerFacts(enabled=False, available=False, preloaded=False)
INSTALLED_NOT_PRELOADED = ServerFacts(enabled=False, available=True, preloaded=False)
READY = ServerFacts(enabled=False, available=True, preloaded=True)
ENABLED = ServerFacts(enabled=True, available=True, preloaded=True)
ALL_FACTS = [ServerFacts(*bits) for bits in itertools.product((False, True), repeat=3)]
RECORDED: list[Backend | None] = [None, "plain", "timescale"]


def test_plain_never_tries_timescale() -> None:
    for facts in ALL_FACTS:
        assert decide("plain", None, facts) == Decision("plain")


def test_auto_uses_what_the_server_can_run() -> None:
    assert decide("auto", None, NONE) == Decision("plain")
    assert decide("auto", None, READY) == Decision(None)  # try CREATE EXTENSION
    assert decide("auto", None, ENABLED) == Decision("timescale")


def test_auto_warns_and_goes_plain_when_installed_but_not_preloaded() -> None:
    decision = decide("auto", None, INSTALLED_NOT_PRELOADED)
    assert decision.backend == "plain"
    assert "shared_preload_libraries" in decision.warning
    assert "\n" not in decision.warning


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (NONE, "the TimescaleDB extension is not installed on this server"),
        (INSTALLED_NOT_PRELOADED, "not in shared_preload_libraries"),
    ],
)
def test_timescale_refuses_in_one_line(facts: ServerFacts, reason: str) -> None:
    with pytest.raises(BackendError) as raised:
        decide("timescale", None, facts)
    message = str(raised.value)
    assert message.startswith("database.backend: ")
    assert reason in message
    assert "\n" not in message


def test_a_migrated_database_keeps_its_backend() -> None:
    for facts, recorded in itertools.product(ALL_FACTS, ("plain", "timescale")):
        assert decide("auto", recorded, facts) == Decision(recorded)  # type: ignore[arg-type]
        assert decide(recorded, recorded, facts) == Decision(recorded)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="built on plain PostgreSQL"):
        decide("timescale", "plain", ENABLED)
    with pytest.raises(BackendError, match="built on TimescaleDB"):
        decide("plain", "timescale", NONE)


@pytest.mark.parametrize(
    ("choice", "recorded", "facts"),
    list(itertools.product(BACKEND_CHOICES, RECORDED, ALL_FACTS)),
)
def test_every_case_is_decided_within_the_choice(
    choice: BackendChoice, recorded: Backend | None, facts: ServerFacts
) -> None:
    if choice != "auto" and _refused(choice, recorded, facts):
        return  # a refusal is one line (test_timescale_refuses_in_one_line)
    decision = decide(choice, recorded, facts)  # auto always finds a backend
    if choice != "auto":
        assert decision.backend in (choice, None)
    if decision.backend is None:  # CREATE EXTENSION is tried only where it cannot end the session
        assert recorded is None
        assert choice != "plain"
        assert (facts.available, facts.preloaded, facts.enabled) == (True, True, False)
    if decision.warning:
        assert (choice, decision.backend) == ("auto", "plain")


def _refused(choice: BackendChoice, recorded: Backend | None, facts: ServerFacts) -> bool:
    try:
        decide(choice, recorded, facts)
    except BackendError as exc:
        return "\n" not in str(exc)
    return False
