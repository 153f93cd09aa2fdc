"""Schemathesis over the live app's OpenAPI document, as a rep and as an admin.

Every operation of ``/openapi.json`` gets generated requests, valid ones (positive mode) and
ones that break the schema (negative mode: out-of-range ids and amounts, wrong types, missing
fields), against the real app: uvicorn, a real Temporal worker and a throwaway SQLite store
seeded with people, the demo catalog, quotes and an envelope so ids exist. Each response must
not be a server error, and must match what the document says (status code, content type and
body schema). Nothing is excluded: destructive calls are fine on a throwaway store. One is
steered: revoking an API token (positive cases) gets a decoy token of the same user, since
revoking the token the run itself uses would leave every later request a 401.

Bounded and repeatable: a fixed number of examples per operation and mode, and Hypothesis'
``derandomize`` (a fixed seed, no example database), so a run is the same run after run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from tests.pdfs import contract_pdf
from tests.support import make_account
from tests.web_support import People, quote_body, seed_people, token_client
from web.services.catalog import save_catalog

DEMO = Path(__file__).resolve().parents[1] / "dealdesk" / "demo"
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
REVOKE_TOKEN = "DELETE /api/v1/auth/tokens/{token_id}"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)
    calls: int = 0


def _fuzz(base_url: str, token: str, decoy_token_id: int,
          schema_doc: dict[str, Any]) -> Findings:
    """Blocking (requests): runs on a worker thread while the app serves on the test's loop."""
    schema = schemathesis.openapi.from_dict(schema_doc)
    found = Findings()
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode, examples in EXAMPLES.items():
                fixed = ({"token_id": decoy_token_id} if mode is GenerationMode.POSITIVE
                         and operation.label == REVOKE_TOKEN else None)
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
                run = _runner(strategy, examples, base_url, http, found)
                try:
                    run()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # no parameters: nothing to break
                except (Exception, FailureGroup) as e:  # report every operation's failures
                    found.failures.append(f"{operation.label} [{mode.value}]: {e}")
    return found


def _runner(strategy: Any, examples: int, base_url: str, http: requests.Session,
            found: Findings) -> Callable[[], None]:
    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        found.calls += 1
        case.call_and_validate(base_url=base_url, session=http, checks=CHECKS, timeout=60)

    return run


def _seed(sessions: sessionmaker[Session]) -> People:
    people = seed_people(sessions)
    with sessions.begin() as s:
        for name in ("Initech", "Stark Industries", "Globex"):  # the demo price books'
            make_account(s, name)
        save_catalog(s, (DEMO / "catalog.yaml").read_text(), None)
    return people


async def _data(base_url: str, people: People) -> None:
    """Quotes (one configured, one submitted) and an envelope, made through the API."""
    rep = await token_client(base_url, people.rep)
    try:
        for net in (9_500_000, 8_000_000):
            r = await rep.post("/api/v1/quotes", json=quote_body(people.account_id, net=net))
            assert r.status_code == 201, r.text
        quote_id = r.json()["id"]
        r = await rep.post(f"/api/v1/quotes/{quote_id}/submit")
        assert r.status_code == 202, r.text
        spec = ('{"title": "MSA", "recipients": [{"name": "Ann Buyer", '
                '"email": "ann@buyer.test"}]}')
        r = await rep.post("/api/v1/envelopes", data={"spec": spec},
                           files={"document": ("msa.pdf", contract_pdf(2), "application/pdf")})
        assert r.status_code == 201, r.text
    finally:
        await rep.aclose()


async def _token(base_url: str, email: str) -> tuple[str, int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        r = await c.post("/api/v1/auth/token", json={"email": email, "password": "pw"})
        assert r.status_code == 200, r.text
        return str(r.json()["token"]), int(r.json()["id"])


@pytest.mark.timeout(420)
async def test_every_operation_answers_within_its_documented_contract(
        live_url: str, sessions: sessionmaker[Session]) -> None:
    people = await asyncio.to_thread(_seed, sessions)
    await _data(live_url, people)
    async with httpx.AsyncClient(base_url=live_url) as c:
        doc = (await c.get("/openapi.json")).json()
    started = time.monotonic()
    report = []
    # Every token first: the run's failed logins soon lock this address out of new ones.
    tokens = {who.email: (await _token(live_url, who.email), await _token(live_url, who.email))
              for who in (people.rep, people.admin)}
    for who in (people.rep, people.admin):
        (token, _), (_, decoy) = tokens[who.email]
        found = await asyncio.to_thread(_fuzz, live_url, token, decoy, doc)
        report += [f"as {who.name}: {f}" for f in found.failures]
        print(f"as {who.name}: {found.calls} calls, {len(found.failures)} failures, "
              f"{time.monotonic() - started:.0f}s")
    assert not report, "\n\n".join(report)
