"""The whole HTTP API fuzzed from its own OpenAPI document: no request, however odd, gets a
server error.

schemathesis makes requests for every operation of /openapi.json (the document's examples, its
boundary cases and random ones), then chains of requests where a later one uses what an earlier
one returned. They carry an admin key, so the write routes take part too, and go to the app
in-process, over a database holding two vehicles' patrols and one hotspot run so that the
hotspot routes (list, detail, report) answer from it. `/v1/live` (an endless stream) is left
out. Examples are few and their generation derandomised, so a run is short and repeatable; a
deeper search is the same test with larger FUZZ_EXAMPLES and FUZZ_SEQUENCES.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case, CheckFunction, Response
from schemathesis.checks import not_a_server_error

from api import keys
from api.app import create_app
from api.settings import ApiSettings
from store.scratch import scratch_database
from tests.integration.test_api import BASE, analyse, insert_readings, patrol_rows, roll_up

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = 10  # per operation and phase
FUZZ_SEQUENCES = 20  # chains of up to five calls
# Judged by what a request gets back, not by how many generated inputs the schema filtered out
# or how long they took to make on a busy machine.
QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much]


@pytest.fixture(scope="module")
def fuzzed_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """A database with patrols over a source and one hotspot run; its URL and an admin key."""
    with scratch_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            insert_readings(conn, patrol_rows(hot=40.0))
            roll_up(conn)
            analyse(conn, BASE + timedelta(days=5))
            key = keys.create(conn, "schemathesis", "admin").key
        yield url, key


@pytest.fixture(scope="module")
def fuzzed_app(fuzzed_database: tuple[str, str]) -> FastAPI:
    url, _ = fuzzed_database
    api = ApiSettings(
        database_url=url, key_per_minute=0, anonymous_per_minute=0, statement_timeout_s=10
    )
    return create_app(api)


# The document does not depend on the settings, so the operations are known at collection; the
# requests go to the app over the fuzzed database.
NOWHERE = ApiSettings(database_url="postgresql://nobody@127.0.0.1:9/none")
schema = schemathesis.openapi.from_dict(create_app(NOWHERE).openapi()).exclude(path="/v1/live")


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=QUIET,
)
def test_no_request_gets_a_server_error(
    case: Case[Any], fuzzed_app: FastAPI, fuzzed_database: tuple[str, str]
) -> None:
    _, key = fuzzed_database
    case.call_and_validate(app=fuzzed_app, headers={"X-API-Key": key}, checks=[not_a_server_error])


def test_sequences_of_requests_get_no_server_error(
    fuzzed_app: FastAPI, fuzzed_database: tuple[str, str]
) -> None:
    """Calls that use what an earlier call returned: a case opened, then read, changed or
    verified; a hotspot run requested, then its request looked up."""
    _, key = fuzzed_database

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:  # noqa: ARG002
            return {"app": fuzzed_app, "headers": {"X-API-Key": key}}

        def validate_response(
            self,
            response: Response,
            case: Case[Any],
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=[not_a_server_error],
                additional_checks=additional_checks,
                transport_kwargs=kwargs,
            )

    Workflow.run(
        settings=settings(
            max_examples=FUZZ_SEQUENCES,
            stateful_step_count=5,
            derandomize=True,
            deadline=None,
            suppress_health_check=QUIET,
        )
    )
