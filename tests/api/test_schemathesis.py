"""Schemathesis against /openapi.json: every operation, positive and negative data.

A fixed seed keeps `make test` reproducible; `make fuzz` runs the same checks with far
more cases (CRIER_FUZZ_EXAMPLES). Passing means no response is a 5xx and every response
has a documented status, content type and body shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.openapi import build_spec
from app.security import generate_secret_key
from tests.conftest import Tenant

EXAMPLES = int(os.environ.get("CRIER_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# The document depends only on the routes: build it from an app that connects nowhere.
# (schemathesis.pytest.from_fixture does not work with pytest 9 yet.)
_routes_only = create_app(
    {"secret_key": generate_secret_key(), "database_url": "sqlite://"}, require_secret=True
)
schema = schemathesis.openapi.from_dict(build_spec(_routes_only))
TALLY = {"cases": 0, "server_errors": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_tally() -> Iterator[None]:
    yield
    print(f"\nschemathesis: {TALLY['cases']} cases, {TALLY['server_errors']} responses >= 500")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("CRIER_FUZZ_EXAMPLES"),
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: Any, tenant: Tenant, live_url: str) -> None:
    TALLY["cases"] += 1
    response = case.call(base_url=live_url, headers={"Authorization": f"Bearer {tenant.key}"})
    if response.status_code >= 500:
        TALLY["server_errors"] += 1
    case.validate_response(response, checks=CHECKS)


def test_stateful_runs_follow_the_documented_links(tenant: Tenant, live_url: str) -> None:
    """Create a post or upload media, then read, change, cancel or delete what came back."""
    base = schema.as_state_machine()

    class Links(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live_url, "headers": {"Authorization": f"Bearer {tenant.key}"}}

        def validate_response(self, response: Any, case: Any, *_: Any, **__: Any) -> None:
            TALLY["cases"] += 1
            if response.status_code >= 500:
                TALLY["server_errors"] += 1
            case.validate_response(response, checks=CHECKS)

    Links.run(
        settings=settings(
            max_examples=max(EXAMPLES // 2, 10),
            stateful_step_count=6,
            deadline=None,
            # The server's state carries over between scenarios, so Hypothesis cannot
            # replay one to shrink it: report the failing sequence as found.
            phases=[Phase.explicit, Phase.generate],
            database=None,
            derandomize=not os.environ.get("CRIER_FUZZ_EXAMPLES"),
            suppress_health_check=list(HealthCheck),
        )
    )
