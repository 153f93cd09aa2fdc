"""Shared by the library tests on SQLite and PostgreSQL: one scenario of search, ranking,
highlighting and escaping, run through the API of a live app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parents[1] / "bench" / "rfp_match_data.json"


def bench_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(DATA.read_text())["items"]
    return items


async def create(client: httpx.AsyncClient, **body: Any) -> int:
    r = await client.post("/api/v1/library/items", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def search_scenario(rep: httpx.AsyncClient) -> None:
    sso = await create(rep, title="Single sign-on (SSO)", tags=["security", "identity"],
                       body="We support SAML 2.0 single sign-on with Okta and Entra ID. "
                            "<script>alert('x')</script> is just text here.")
    rest = await create(rep, title="Encryption at rest", tags=["security"],
                        body="Customer data is encrypted at rest with AES-256; sign-on "
                             "pages are served over TLS.")
    # Ranking: the title match beats a body mention.
    hits = (await rep.get("/api/v1/library/search", params={"q": "sign-on"})).json()
    assert [h["id"] for h in hits] == [sso, rest], hits
    assert hits[0]["score"] == 1.0 and 0 <= hits[1]["score"] <= 1
    # Stemming on both backends: "encrypting" finds "encrypted"; the match is marked.
    hits = (await rep.get("/api/v1/library/search", params={"q": "encrypting"})).json()
    assert [h["id"] for h in hits] == [rest]
    marked = [s["text"].lower() for s in hits[0]["snippet"] if s["match"]]
    assert marked and all(m.startswith("encrypt") for m in marked), hits[0]
    # A prefix while typing; tag filter.
    assert [h["id"] for h in (await rep.get("/api/v1/library/search",
                                            params={"q": "okt"})).json()] == [sso]
    assert (await rep.get("/api/v1/library/search",
                          params={"q": "security", "tag": "identity"})).json()[0]["id"] == sso
    # Query syntax is just text.
    for q in ['"', "a OR", "NEAR(", "foo:*", "!&|", "*"]:
        r = await rep.get("/api/v1/library/search", params={"q": q})
        assert r.status_code == 200, (q, r.text)
    # The page escapes the item's text and marks only the matches.
    page = await rep.get("/library", params={"q": "alert"}, headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<mark>alert</mark>" in page.text and "&lt;script&gt;" in page.text
