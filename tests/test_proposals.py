"""Proposals on the real Temporal dev server, store and LibreOffice: a draft built from
library sections and text of its own goes through the policy's proposal rules; a reviewer
asks for changes; the next version carries over the review whose sections did not change and
re-opens the one whose did; approved, it becomes a final PDF. Plus who may do what, recall,
bad input, and parallel reviewers and submissions on one instance."""

from __future__ import annotations

import asyncio
import io
import subprocess
from typing import Any

import docx
import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.demo import STEPS, seed_records
from dealdesk.demo.proposal import QUOTE, TITLE, seed_proposal
from dealdesk.settings import Settings
from store.library import LibraryItemVersion
from store.models import Account, AuditEvent, User
from store.proposals import Proposal, ProposalTask, ProposalVersion
from tests.library_support import create
from tests.support import eventually, make_user, quote_fields, replays, serve
from tests.test_assembly import FIXTURES
from tests.web_support import People, seed_people, token_client
from web.services.quotes import create_quote
from workflows.messages import Condition, ProposalFacts, SectionFact
from workflows.policy import parse_policy
from workflows.proposal import ProposalWorkflow
from workflows.rules import plan_chain

POLICY = """
name: proposals
steps:
  - key: manager
    name: Sales manager
    approvers: [{role: sales_manager}]
  - key: security
    name: Security review
    approvers: [{role: finance}]
  - key: legal
    name: Legal review of our own wording
    after: [security]
    approvers: [{role: legal}]
rules:
  - id: quote-discount
    when: [{fact: discount_pct, op: gt, value: 10}]
    add: [manager]
  - id: security-sections
    subject: proposal
    description: Sections about security need the security reviewer
    when: [{fact: section_tags, op: contains, value: security}]
    add: [security]
  - id: own-wording
    subject: proposal
    description: Text written for this proposal needs legal
    when: [{fact: nonstandard_sections, op: not_empty}]
    add: [legal]
"""


def _facts(security: str, custom: str, about: str = "a") -> ProposalFacts:
    return ProposalFacts(1, 1, "P", "Acme", 9, [
        SectionFact("Security", security, ["security"]), SectionFact("About", about, []),
        SectionFact("Our SLA", custom, [], standard=False)])


def test_a_changed_section_reopens_only_the_steps_that_read_it() -> None:
    policy = parse_policy(yaml.safe_load(POLICY), version=1,
                          roles=("sales_manager", "finance", "legal", "deal_desk"),
                          lookup_user=lambda _: None)

    def prints(f: ProposalFacts) -> dict[str, str]:
        return {p.spec.key: p.fingerprint for p in plan_chain(policy, f)}

    base = prints(_facts("s1", "c1"))
    assert list(base) == ["security", "legal"]  # the quote rule never applies to proposals
    assert prints(_facts("s1", "c2")) == {**base, "legal": prints(_facts("s1", "c2"))["legal"]}
    assert prints(_facts("s1", "c2"))["legal"] != base["legal"]
    assert prints(_facts("s2", "c1"))["security"] != base["security"]
    assert prints(_facts("s2", "c1"))["legal"] == base["legal"]
    assert prints(_facts("s1", "c1", about="b")) == base  # an untagged standard section
    f = _facts("s1", "c1")
    assert f.fact("section_tags") == ["security"] and f.fact("nonstandard_sections") == ["Our SLA"]
    assert f.basis(Condition("section_tags", "any", ["security", "x"])) == ["s1"]


def test_a_proposal_rule_reading_a_quote_fact_is_refused() -> None:
    doc = yaml.safe_load(POLICY.replace("fact: nonstandard_sections",
                                                      "fact: margin_pct"))
    with pytest.raises(ValueError, match="unknown proposal fact 'margin_pct'"):
        parse_policy(doc, version=1, roles=("sales_manager", "finance", "legal"),
                     lookup_user=lambda _: None)


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions, POLICY)


async def _sections(rep: httpx.AsyncClient) -> tuple[int, int]:
    security = await create(rep, kind="section", title="Security overview",
                            tags=["security"], body="Data is encrypted at rest and in transit."
                            "\n\n- SOC 2 Type II\n- ISO 27001")
    about = await create(rep, kind="section", title="About Example Corp",
                         body="We have served mid-market customers since 2009.")
    return security, about


async def _proposal(rep: httpx.AsyncClient, people: People, sections: list[dict[str, Any]],
                    title: str = "Analytics platform") -> int:
    r = await rep.post("/api/v1/proposals", json={
        "title": title, "account_id": people.account_id, "customer_signer": "Pat Buyer",
        "customer_signer_title": "CFO"})
    assert r.status_code == 201, r.text
    pid = int(r.json()["id"])
    r = await rep.put(f"/api/v1/proposals/{pid}/sections", json=sections)
    assert r.status_code == 200, r.text
    return pid


async def _state(rep: httpx.AsyncClient, pid: int) -> dict[str, Any]:
    r = await rep.get(f"/api/v1/proposals/{pid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _open_task(rep: httpx.AsyncClient, pid: int, step: str) -> str:
    async def found() -> str | None:
        state = await _state(rep, pid)
        return next((t["id"] for t in state["tasks"]
                     if t["step"] == step and t["state"] == "open"), None)
    task: str = await eventually(found)
    return task


async def test_review_changes_then_carry_over_then_final_pdf(
        client: Client, worker: str, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    async with serve(settings) as url:
        rep = await token_client(url, people.rep)
        finance, legal = (await token_client(url, people.finance),
                          await token_client(url, people.legal))
        security, about = await _sections(rep)
        own = {"kind": "text", "title": "Service levels",
               "body": "We answer priority-1 tickets within 4 hours."}
        pid = await _proposal(rep, people, [{"kind": "library", "item_id": about},
                                            {"kind": "library", "item_id": security}, own])
        r = await rep.post(f"/api/v1/proposals/{pid}/submit")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "in_review"
        [v1] = r.json()["versions"]
        assert [s["title"] for s in v1["sections"]] == [
            "About Example Corp", "Security overview", "Service levels"]
        assert [s["standard"] for s in v1["sections"]] == [True, True, False]

        # The security reviewer approves; a reviewer who isn't theirs can't; legal asks for
        # changes (a comment is required).
        sec_task = await _open_task(rep, pid, "Security review")
        r = await legal.post(f"/api/v1/proposals/{pid}/tasks/{sec_task}",
                             json={"decision": "approve"})
        assert r.status_code == 403, r.text
        r = await finance.post(f"/api/v1/proposals/{pid}/tasks/{sec_task}",
                               json={"decision": "approve", "version": 1})
        assert r.status_code == 200, r.text
        legal_task = await _open_task(rep, pid, "Legal review of our own wording")
        r = await legal.post(f"/api/v1/proposals/{pid}/tasks/{legal_task}",
                             json={"decision": "request_changes"})
        assert r.status_code == 422 and "comment" in r.text
        r = await legal.post(f"/api/v1/proposals/{pid}/tasks/{legal_task}",
                             json={"decision": "request_changes", "comment": "Say 4 business "
                                   "hours"})
        assert r.status_code == 200, r.text
        await eventually(lambda: _status_is(rep, pid, "changes_requested"))

        # Version 2 changes only the text of our own: security carries over, legal re-opens.
        own["body"] = "We answer priority-1 tickets within 4 business hours."
        r = await rep.put(f"/api/v1/proposals/{pid}/sections", json=[
            {"kind": "library", "item_id": about}, {"kind": "library", "item_id": security},
            own])
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
        r = await rep.post(f"/api/v1/proposals/{pid}/submit")
        assert r.status_code == 202, r.text
        legal_task = await _open_task(rep, pid, "Legal review of our own wording")
        state = await _state(rep, pid)
        steps = {s["key"]: s for s in state["versions"][0]["steps"]}
        assert steps["security"]["state"] == "carried_over"
        assert steps["security"]["carried_from"]["decided_by"] == people.finance.name
        assert steps["legal"]["state"] == "open"
        assert [t["step"] for t in state["tasks"]] == ["Legal review of our own wording"]
        r = await legal.post(f"/api/v1/proposals/{pid}/tasks/{legal_task}",
                             json={"decision": "approve", "version": 2})
        assert r.status_code == 200, r.text
        await eventually(lambda: _status_is(rep, pid, "final"), timeout=120)

        # The final PDF: what was reviewed, by hash; both versions are kept.
        state = await _state(rep, pid)
        v2, v1 = state["versions"]
        assert v2["pdf_sha256"] and v1["pdf_sha256"] is None
        assert v2["docx_sha256"] != v1["docx_sha256"]
        pdf = await rep.get(f"/api/v1/proposals/{pid}/versions/2/document.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        text = (await asyncio.to_thread(subprocess.run, ["pdftotext", "-layout", "-", "-"],
                                        input=pdf.content, capture_output=True,
                                        check=True)).stdout.decode()
        for words in ("Analytics platform", "Security overview", "SOC 2 Type II",
                      "4 business hours", "[[sign:customer]]", "Pat Buyer"):
            assert words in text, words
        docx = await rep.get(f"/api/v1/proposals/{pid}/versions/1/document.docx")
        assert docx.status_code == 200 and docx.content.startswith(b"PK")
        r = await rep.put(f"/api/v1/proposals/{pid}/sections", json=[own])
        assert r.status_code == 409, r.text  # final is final
        with sessions() as s:
            actions = list(s.scalars(select(AuditEvent.action).where(
                AuditEvent.entity == f"proposal:{pid}").order_by(AuditEvent.id)))
            wids = list(s.scalars(select(ProposalVersion.workflow_id)))
        for action in ("proposal.created", "proposal.submitted", "proposal.task_approved",
                       "proposal.task_changes_requested", "proposal.finalized"):
            assert action in actions, (action, actions)
        assert actions.count("proposal.finalized") == 1
        for wid in wids:
            await replays(client, wid, [ProposalWorkflow])


async def _status_is(rep: httpx.AsyncClient, pid: int, status: str) -> bool:
    return (await _state(rep, pid))["status"] == status


async def test_who_may_do_what_and_bad_input(
        client: Client, worker: str, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        other = make_user(s, "Oz Other", "rep")
        s.expunge(other)
    async with serve(settings) as url:
        rep, auditor, stranger = (await token_client(url, people.rep),
                                  await token_client(url, people.auditor),
                                  await token_client(url, other))
        security, _ = await _sections(rep)
        r = await auditor.post("/api/v1/proposals", json={
            "title": "x", "account_id": people.account_id})
        assert r.status_code == 403
        r = await rep.post("/api/v1/proposals", json={"title": "x", "account_id": 999_999})
        assert r.status_code == 422 and "account" in r.text
        pid = await _proposal(rep, people, [{"kind": "library", "item_id": security}])
        assert (await stranger.get(f"/api/v1/proposals/{pid}")).status_code == 404
        assert (await auditor.get(f"/api/v1/proposals/{pid}")).status_code == 200
        for bad, word in (([{"kind": "library", "item_id": 999_999}], "no library item"),
                          ([{"kind": "text", "title": "t", "body": " "}], "needs a title"),
                          ([{"kind": "pricing"}], "link one first")):
            r = await rep.put(f"/api/v1/proposals/{pid}/sections", json=bad)
            assert r.status_code == 422 and word in r.text, r.text
        r = await stranger.put(f"/api/v1/proposals/{pid}/sections", json=[])
        assert r.status_code == 404
        empty = await _proposal(rep, people, [], title="Empty")
        r = await rep.post(f"/api/v1/proposals/{empty}/submit")
        assert r.status_code == 422 and "at least one section" in r.text
        with sessions() as s:
            assert s.scalar(select(ProposalVersion.id).where(
                ProposalVersion.proposal_id == empty)) is None

        # In review: no edits; only the owner recalls; a recall cancels the open review.
        assert (await rep.post(f"/api/v1/proposals/{pid}/submit")).status_code == 202
        r = await rep.put(f"/api/v1/proposals/{pid}/sections", json=[])
        assert r.status_code == 409 and "recall" in r.text
        await _open_task(rep, pid, "Security review")
        r = await auditor.post(f"/api/v1/proposals/{pid}/recall", json={})
        assert r.status_code in (403, 404)
        r = await rep.post(f"/api/v1/proposals/{pid}/recall", json={"comment": "wrong deal"})
        assert r.status_code == 200, r.text
        await eventually(lambda: _status_is(rep, pid, "draft"))
        state = await _state(rep, pid)
        assert {t["state"] for t in state["tasks"]} == {"cancelled"}
        assert state["versions"][0]["status"] == "recalled"


async def test_parallel_reviewers_and_submissions(
        client: Client, worker: str, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        second: User = make_user(s, "Fin Two", "finance")
        s.expunge(second)
    async with serve(settings) as url:
        rep = await token_client(url, people.rep)
        reviewers = [await token_client(url, people.finance), await token_client(url, second)]
        security, about = await _sections(rep)
        ids = [await _proposal(rep, people, [{"kind": "library", "item_id": security},
                                             {"kind": "library", "item_id": about}],
                               title=f"Parallel {n}") for n in range(4)]
        answers = await asyncio.gather(*(rep.post(f"/api/v1/proposals/{i}/submit")
                                         for i in ids))
        assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
        # Two reviewers in the same queue decide the same task at once: exactly one wins.
        task = await _open_task(rep, ids[0], "Security review")
        both = await asyncio.gather(*(c.post(f"/api/v1/proposals/{ids[0]}/tasks/{task}",
                                             json={"decision": "approve"})
                                      for c in reviewers))
        assert sorted(r.status_code for r in both) == [200, 409], [r.text for r in both]
        assert "already approved by" in next(r.text for r in both if r.status_code == 409)
        # The others are decided in parallel, one reviewer each.
        tasks = [await _open_task(rep, i, "Security review") for i in ids[1:]]
        done = await asyncio.gather(*(
            reviewers[n % 2].post(f"/api/v1/proposals/{i}/tasks/{t}",
                                  json={"decision": "approve"})
            for n, (i, t) in enumerate(zip(ids[1:], tasks, strict=True))))
        assert [d.status_code for d in done] == [200] * 3
        for i in ids:
            await eventually(lambda i=i: _status_is(rep, i, "final"), timeout=120)
        with sessions() as s:
            approvals = list(s.scalars(select(AuditEvent.action).where(
                AuditEvent.entity == f"proposal:{ids[0]}",
                AuditEvent.action == "proposal.task_approved")))
        assert len(approvals) == 1


async def test_the_demo_seeds_a_proposal_in_review_once(
        client: Client, worker: str, settings: Settings,
        sessions: sessionmaker[Session]) -> None:
    assert "proposal in review" in [step.what for step in STEPS]
    assert seed_records(sessions)
    with sessions.begin() as s:  # the demo's Globex quote (seed_quotes also submits it)
        rep = s.scalars(select(User).where(User.email == "rep@demo.test")).one()
        globex = s.scalars(select(Account).where(Account.name == "Globex")).one()
        create_quote(s, rep, quote_fields(globex, title=QUOTE, list_amount=20_000_000,
                                          net_amount=15_000_000))
    await seed_proposal(sessions, client, settings)

    async def deal_desk_waits() -> bool:
        with sessions() as s:
            return s.scalar(select(ProposalTask.queue_role).where(
                ProposalTask.state == "open")) == "deal_desk"
    await eventually(deal_desk_waits)
    with sessions() as s:
        p = s.scalars(select(Proposal).where(Proposal.title == TITLE)).one()
        assert p.status == "in_review"
        assert p.deal_id is not None and p.deal_id == p.quote.deal_id  # type: ignore[union-attr]
        [v] = s.scalars(select(ProposalVersion).where(ProposalVersion.proposal_id == p.id))
        # No bill of materials: the quote has no catalog lines.
        assert [x["title"] for x in v.sections] == [
            "About Northwind Software", "Security and compliance", "Implementation plan",
            "Pricing", "Customer story: Initech"]
        assert [st.key for st in v.steps] == ["deal_desk", "legal"]
    await seed_proposal(sessions, client, settings)
    with sessions() as s:
        assert len(list(s.scalars(select(Proposal)))) == 1


def _fragment(*paragraphs: str) -> bytes:
    d = docx.Document()
    d.add_heading("Our commitment", level=2)
    for text in paragraphs:
        d.add_paragraph(text)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


async def test_rich_sections_fill_in_the_proposal_and_bad_ones_are_refused(
        client: Client, worker: str, settings: Settings, people: People,
        sessions: sessionmaker[Session]) -> None:
    nda = FIXTURES / "contract_templates" / "bonterms-mutual-nda.docx"
    async with serve(settings) as url:
        rep, auditor = (await token_client(url, people.rep),
                        await token_client(url, people.auditor))
        item = await create(rep, kind="section", title="Commitment", body="plain fallback")
        terms = await create(rep, kind="section", title="Mutual NDA", body="see the DOCX")

        async def upload(item_id: int, data: bytes, name: str = "s.docx",
                         who: httpx.AsyncClient = rep) -> httpx.Response:
            return await who.put(f"/api/v1/library/items/{item_id}/docx",
                                 files={"file": (name, data)})

        for data, word in ((b"not a word file", "not a Word document"),
                           (_fragment("{{ secret_key }}"), "'secret_key'"),
                           (_fragment("{{ customer.__class__.__mro__ }}"), "may not do"),
                           (_fragment("{% for x in customer %}"), "template error")):
            r = await upload(item, data)
            assert r.status_code == 422 and word in r.text, r.text
        assert (await upload(item, _fragment("x"), who=auditor)).status_code == 403
        # Two uploads to one item at once: two versions, one after the other.
        both = await asyncio.gather(*(upload(item, _fragment(f"draft {n}")) for n in (1, 2)))
        assert [b.status_code for b in both] == [200, 200]
        assert sorted(b.json()["version"] for b in both) == [2, 3]
        r = await upload(item, _fragment("Prepared for {{ customer }}, valid until "
                                         "{{ valid_until }}.{% if signer %} Signed by "
                                         "{{ signer }}.{% endif %} Project: "
                                         "{{ custom.project }}."))
        assert r.status_code == 200, r.text
        assert r.json()["docx_fields"] == ["custom", "customer", "signer", "valid_until"]
        assert r.json()["versions"][0]["version"] == 4
        r = await upload(terms, nda.read_bytes(), "nda.docx")
        assert r.status_code == 200 and r.json()["docx_fields"] == [], r.text
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(LibraryItemVersion).where(
                LibraryItemVersion.docx_sha256.is_not(None))) == 4

        # No rule of the policy applies: the version is final without a review.
        pid = await _proposal(rep, people, [{"kind": "library", "item_id": item},
                                            {"kind": "library", "item_id": terms}],
                              title="Fill-in test")
        r = await rep.post(f"/api/v1/proposals/{pid}/submit")  # custom.project is missing
        assert r.status_code == 422 and "custom fields" in r.text, r.text
        r = await rep.put(f"/api/v1/proposals/{pid}/fields",
                          json={"custom_fields": {"Bad Name": "x"}})
        assert r.status_code == 422 and "lower-case" in r.text
        r = await rep.put(f"/api/v1/proposals/{pid}/fields",
                          json={"custom_fields": {"project": "Apollo"}})
        assert r.status_code == 200 and r.json()["custom_fields"] == {"project": "Apollo"}
        assert (await rep.post(f"/api/v1/proposals/{pid}/submit")).status_code == 202
        await eventually(lambda: _status_is(rep, pid, "final"), timeout=120)
        state = await _state(rep, pid)
        assert state["versions"][0]["steps"] == [] and state["tasks"] == []
        pdf = await rep.get(f"/api/v1/proposals/{pid}/versions/1/document.pdf")
        text = (await asyncio.to_thread(subprocess.run, ["pdftotext", "-", "-"],
                                        input=pdf.content, capture_output=True,
                                        check=True)).stdout.decode()
        account = state["account_id"]
        with sessions() as s:
            customer = s.get(Account, account).name  # type: ignore[union-attr]
        assert f"Prepared for {customer}, valid until" in text
        assert "Signed by Pat Buyer. Project: Apollo." in text and "{{" not in text
        assert "Bonterms" in text  # the NDA's own text and attribution came along
