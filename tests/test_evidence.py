"""A deal's evidence bundle, exported by an auditor, checks itself offline with its verify.py
in a venv that has only pyHanko (network off); every kind of tampering is named."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.models import AuditEvent, Envelope
from tests.order_forms import send_order_form, sign_in_turn
from tests.pdfs import contract_pdf
from tests.pyhanko_only import pyhanko_venv
from tests.test_audit import run_cli
from tests.web_support import People, seed_people, token_client


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> People:
    return seed_people(sessions)


@pytest.fixture(scope="module")
def only_pyhanko(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pyhanko_venv(tmp_path_factory.mktemp("pyhanko-only") / "venv")


async def _signed_deal(rep: httpx.AsyncClient, people: People, client: Client,
                       sessions: sessionmaker[Session]) -> tuple[int, int]:
    """A deal whose approved quote's order form both parties signed: (deal, envelope)."""
    deal_id, eid = await send_order_form(rep, people, sessions, "Evidence")
    await sign_in_turn(sessions, client, eid, people)
    return deal_id, eid


def _verify(python: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    """verify.py in the only-pyHanko venv, with no network at all."""
    return subprocess.run(["unshare", "-n", str(python), "verify.py"], cwd=bundle,
                          capture_output=True, text=True, timeout=300, check=False)


def _rows(bundle: Path) -> list[str]:
    return (bundle / "audit" / "rows.jsonl").read_text().splitlines(keepends=True)


def _edit_row(bundle: Path) -> str:
    lines = _rows(bundle)
    row = json.loads(lines[1])
    row["content"]["data"]["tampered"] = True
    lines[1] = json.dumps(row) + "\n"
    (bundle / "audit" / "rows.jsonl").write_text("".join(lines))
    return f"audit row {row['id']}: its content does not match its hash"


def _delete_row(bundle: Path) -> str:
    lines = _rows(bundle)
    del lines[2]
    (bundle / "audit" / "rows.jsonl").write_text("".join(lines))
    return "audit/rows.jsonl: the rows are the manifest's"


def _reorder_rows(bundle: Path) -> str:
    lines = _rows(bundle)
    lines[1], lines[2] = lines[2], lines[1]
    (bundle / "audit" / "rows.jsonl").write_text("".join(lines))
    return "audit/rows.jsonl: the rows are the manifest's"


def _replace_document(bundle: Path) -> str:
    path = next((bundle / "documents").glob("*.pdf"))
    path.write_bytes(contract_pdf(3))
    return f"documents/{path.name}: its bytes do not hash to its name"


def _flip_a_byte(bundle: Path) -> str:
    path = next(p for p in (bundle / "signed").glob("envelope-*.pdf")
                if "certificate" not in p.name)
    data = bytearray(path.read_bytes())
    at = data.index(b"/Contents <") - 200  # inside the signed byte range
    data[at] = data[at] ^ 0x01
    path.write_bytes(bytes(data))
    return f"signed/{path.name}: signature"


def _forge_proof(bundle: Path) -> str:
    path = bundle / "audit" / "proofs.json"
    proofs = json.loads(path.read_text())
    row, proof = next(iter(proofs.items()))
    proof["audit_path"][0] = "00" * 32
    path.write_text(json.dumps(proofs))
    return f"audit row {row}: its inclusion proof does not lead to the signed tree head's root"


def _edit_manifest(bundle: Path) -> str:
    path = bundle / "manifest.json"
    path.write_text(path.read_text().replace('"Evidence"', '"Evidenc3"', 1)
                    .replace("Evidence", "Evidenc3"))
    return "manifest.p7s: the manifest's seal signature validates"


TAMPERING: list[Callable[[Path], str]] = [_edit_row, _delete_row, _reorder_rows,
                                          _replace_document, _flip_a_byte, _forge_proof,
                                          _edit_manifest]


def quote_of(sessions: sessionmaker[Session], eid: int) -> int | None:
    with sessions() as s:
        return s.get_one(Envelope, eid).quote_id


async def _diffs(auditor: httpx.AsyncClient, sessions: sessionmaker[Session], deal_id: int,
                 eid: int, qid: int) -> None:
    """Two document versions of the deal compare by their text (the signers' stamps are the
    difference); a hash the deal's rows don't name, or a version never submitted, is 404."""
    with sessions() as s:
        env = s.get_one(Envelope, eid)
        original, sealed = env.original_sha256, env.final_sha256
    r = await auditor.get(f"/deals/{deal_id}/history/diff", params={"a": original, "b": sealed})
    assert r.status_code == 200, r.text
    assert 'class="add"' in r.text and "Ann Buyer" in r.text
    r = await auditor.get(f"/deals/{deal_id}/history/diff", params={"a": original,
                                                                    "b": "ab" * 32})
    assert r.status_code == 404 and "no document version abababababab" in r.text
    r = await auditor.get(f"/deals/{deal_id}/history/diff",
                          params={"quote": qid, "a": "1", "b": "2"})
    assert r.status_code == 404 and f"quote {qid} has no submitted version" in r.text
    r = await auditor.get(f"/deals/{deal_id}/history/diff",
                          params={"quote": qid, "a": "1", "b": "9" * 30})
    assert r.status_code == 422 and "two version numbers" in r.text
    for date, status in (("9999-12-31", 200), ("2026-12-04T10:00", 200), ("soon", 422)):
        r = await auditor.get(f"/api/v1/deals/{deal_id}/history", params={"date": date})
        assert r.status_code == status, (date, r.text)
    assert (await auditor.get(f"/api/v1/deals/{deal_id}/history",
                              params={"date": "2000-01-01"})).json()["at"] == -1


async def _store_side_breaks_are_named(sessions: sessionmaker[Session], settings: Settings,
                                       eid: int, tmp_path: Path) -> None:
    """``dealdesk audit verify`` checks the documents behind the log: a replaced document
    version and a changed byte in a sealed PDF are each named."""
    ok = run_cli(settings.database_url, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "documents intact" in ok.stdout and "sealed PDFs validate" in ok.stdout
    blobs = BlobStore(settings.blob_dir)
    with sessions() as s:
        env = s.get_one(Envelope, eid)
        original, sealed = env.original_sha256, env.final_sha256
    assert sealed is not None
    kept = blobs.get(original)
    blobs.path(original).write_bytes(contract_pdf(3))
    broken = run_cli(settings.database_url, tmp_path)
    assert broken.returncode == 1
    assert f"document BROKEN: document {original}, named by audit row" in broken.stderr
    blobs.path(original).write_bytes(kept)

    data = bytearray(blobs.get(sealed))
    at = data.index(b"/Contents <") - 200
    data[at] ^= 0x01
    blobs.path(sealed).write_bytes(bytes(data))
    broken = run_cli(settings.database_url, tmp_path)
    assert broken.returncode == 1
    out = " ".join(broken.stderr.split())  # rich wraps long lines
    assert f"document {sealed}" in out and f"envelope {eid}'s signed PDF {sealed}" in out, out


async def test_the_bundle_verifies_offline_and_names_every_tampering(
        live_url: str, client: Client, people: People, sessions: sessionmaker[Session],
        settings: Settings, only_pyhanko: Path, tmp_path: Path) -> None:
    rep = await token_client(live_url, people.rep)
    deal_id, eid = await _signed_deal(rep, people, client, sessions)
    auditor = await token_client(live_url, people.auditor)
    r = await auditor.get(f"/api/v1/deals/{deal_id}/evidence", timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        z.extractall(tmp_path / "unzipped")
    [bundle] = (tmp_path / "unzipped").iterdir()
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {"verify.py", "merkle.py", "manifest.json", "manifest.p7s", "timeline.json",
            "timeline.pdf", "audit/rows.jsonl", "audit/tree_head.json", "audit/proofs.json",
            "pki/root.pem", "pki/root.crl", "pki/issuing.crl",
            f"signed/envelope-{eid}.pdf", f"signed/envelope-{eid}-certificate.pdf"} <= names
    assert any(n.startswith("histories/") for n in names)
    assert any(n.startswith("documents/") for n in names)
    timeline = json.loads((bundle / "timeline.json").read_text())
    assert [e["action"] for e in timeline if e["action"] == "envelope.signed"] == [
        "envelope.signed"] * 2

    done = _verify(only_pyhanko, bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checks passed" in done.stdout

    for tamper in TAMPERING:
        copy = tmp_path / tamper.__name__
        shutil.copytree(bundle, copy)
        named = tamper(copy)
        done = _verify(only_pyhanko, copy)
        assert done.returncode == 1, (tamper.__name__, done.stdout)
        assert f"FAIL {named}" in done.stdout, (tamper.__name__, done.stdout)

    await _diffs(auditor, sessions, deal_id, eid, int(quote_of(sessions, eid)))
    # Several auditors at once: every export and timeline answers, and the tree heads the
    # exports issue side by side all verify (below, with the whole log).
    answers = await asyncio.gather(*(
        auditor.get(f"/api/v1/deals/{deal_id}/evidence", timeout=120) for _ in range(4)),
        *(auditor.get(f"/api/v1/deals/{deal_id}/history") for _ in range(4)),
        auditor.get("/healthz"))
    assert [a.status_code for a in answers] == [200] * 9
    for bundle_bytes in (a.content for a in answers[:4]):
        with zipfile.ZipFile(io.BytesIO(bundle_bytes)) as z:
            assert any(n.endswith("/audit/proofs.json") for n in z.namelist())
    await _store_side_breaks_are_named(sessions, settings, eid, tmp_path)

    # The auditor's export is on the deal's record.
    def views() -> list[str]:
        with sessions() as s:
            return [v["path"] for v in s.scalars(select(AuditEvent.data).where(
                AuditEvent.action == "auditor.viewed", AuditEvent.entity == f"deal:{deal_id}"))]

    assert f"/api/v1/deals/{deal_id}/evidence" in views()
    # Opening the deal's page is a view; the page's own background refresh is not.
    before = len(views())
    assert (await auditor.get(f"/deals/{deal_id}")).status_code == 200
    assert (await auditor.get(f"/deals/{deal_id}", headers={"HX-Request": "true"})
            ).status_code == 200
    assert views()[before:] == [f"/deals/{deal_id}"]
    for c in (rep, auditor):
        await c.aclose()
