"""Contract tests generated from the OpenAPI schema (schemathesis): whatever is sent, no 5xx, and
every answer matches the schema (status, content type, body).

Bounded in CI (``ASSENT_CONTRACT_EXAMPLES``, default 8 per operation); set it higher for a longer
run, e.g. ``ASSENT_CONTRACT_EXAMPLES=200``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api import keys
from config.wsgi import application
from consents import services

EXAMPLES = int(os.environ.get("ASSENT_CONTRACT_EXAMPLES", "8"))


@pytest.fixture
def api_schema(db: Any, connection_kept: None) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def world(db: Any) -> dict[str, str]:
    topic = services.topic_create(
        slug="news", purpose="newsletter", channels=["email", "sms"], name_fr="N", name_en="N"
    )
    assert topic
    contact = services.contact_create(email="ada@example.com", informed_at_collection=True)
    services.consent_grant(
        contact=contact, topic="news", channel="email",
        proof=services.Proof(method="web_form", actor="person"),
    )  # fmt: skip
    _, raw = keys.key_create(name="contract", scopes=list(keys.SCOPES), rate_per_minute=1_000_000)
    CURRENT["raw"] = raw
    return {"raw": raw, "contact": contact.public_id}


schema = schemathesis.pytest.from_fixture("api_schema")
CURRENT: dict[str, str] = {}


@schema.auth()
class KeyAuth:
    """The test's key, as a client sends it; schemathesis also tries without it (ST401)."""

    def get(self, case: Any, context: Any) -> str:
        return CURRENT["raw"]

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_contract(case: Any, world: dict[str, str]) -> None:
    response = case.call()
    # What the API promises: no 5xx, every answer as the schema says, the key enforced. (Not
    # "every schema-valid request is accepted": rules such as "a marketing message needs a
    # topic" are answered 400 with the field, as documented, and are not in JSON Schema.)
    case.validate_response(response, excluded_checks=[checks.positive_data_acceptance])
