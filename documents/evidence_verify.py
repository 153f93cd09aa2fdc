#!/usr/bin/env python3
"""Check a dealdesk evidence bundle, offline: ``python verify.py`` in the unzipped bundle.

Needs only Python 3.11+, pyHanko (``pip install pyhanko``) and the standard library; it reads
nothing but the bundle's own files and fetches nothing. It exits 0 only if every check holds,
and names each failure: the file, the audit row, the signature.

1. **The manifest is the organisation's.** ``manifest.json`` carries a detached CMS signature
   (``manifest.p7s``) by the organisation seal, timestamped by its TSA; it must validate up to
   the bundle's root certificate (``pki/root.pem``), with the bundle's CRLs.
2. **Every file is the one the manifest names**, by SHA-256, and none is missing or extra.
3. **The audit rows are intact**: each row's hash is SHA-256 of the row before's hash and its
   canonical content, as the log computed it when the row was written.
4. **The audit rows are in the signed log**: each row's Merkle inclusion proof (checked with
   the bundle's ``merkle.py``, standard library only) leads to the root of the audit log's
   signed tree head (RFC 9162), whose seal signature and timestamp validate.
5. **Every document version is what the log says**: a file under ``documents/`` hashes to its
   name, and every signed PDF under ``signed/`` is named by an audit row.
6. **Every signature validates** (pyHanko, diff analysis): each signed PDF's signatures are
   intact and trusted up to the bundle's root, with no change after signing beyond what
   signing permits; a signer certificate that has expired since is judged at the time of its
   trusted timestamp.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext

MANIFEST = "manifest.json"
SIGNATURE = "manifest.p7s"
UNLISTED = frozenset({MANIFEST, SIGNATURE})
GENESIS = "0" * 64
KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                                match_all_key_usages=False)


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL {what}")
        return ok


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """As dealdesk's audit log writes it (store/audit.py)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


# --- PKI ------------------------------------------------------------------------------------

def _certs(path: Path) -> list[asn1_x509.Certificate]:
    data = path.read_bytes()
    if pem.detect(data):
        return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [asn1_x509.Certificate.load(data)]


def context(root: Path, moment: dt.datetime | None = None) -> ValidationContext:
    """Trust the bundle's root alone; the other certificates help build paths; the bundle's
    CRLs are the only revocation data. Nothing is fetched."""
    pki = root / "pki"
    roots = _certs(pki / "root.pem")
    others = [c for p in sorted(pki.glob("*.pem")) if p.name != "root.pem" for c in _certs(p)]
    crls = [p.read_bytes() for p in sorted(pki.glob("*.crl"))]
    return ValidationContext(trust_roots=roots, other_certs=others, crls=crls,
                             allow_fetching=False, revocation_mode="soft-fail",
                             moment=moment, retroactive_revinfo=moment is not None)


def check_manifest_signature(root: Path, report: Report) -> dict[str, Any] | None:
    manifest_path, sig_path = root / MANIFEST, root / SIGNATURE
    if not report.check(manifest_path.is_file() and sig_path.is_file(),
                        f"{MANIFEST} and {SIGNATURE} are both present"):
        return None
    data = manifest_path.read_bytes()
    try:
        signed = cms.ContentInfo.load(sig_path.read_bytes())["content"]
        status = asyncio.run(async_validate_detached_cms(
            data, signed, signer_validation_context=context(root),
            ts_validation_context=context(root), key_usage_settings=KEY_USAGE))
        ok = status.intact and status.valid and status.trusted
        timestamped = status.timestamp_validity is not None and \
            status.timestamp_validity.trusted
    except Exception as e:  # a damaged or foreign signature: say what pyHanko said
        report.check(False, f"{SIGNATURE}: the manifest's seal signature can't be read ({e})")
        return None
    report.check(ok, f"{SIGNATURE}: the manifest's seal signature validates up to pki/root.pem")
    report.check(timestamped, f"{SIGNATURE}: the signature carries a trusted timestamp")
    manifest: dict[str, Any] = json.loads(data)
    return manifest


def check_files(root: Path, manifest: dict[str, Any], report: Report) -> None:
    listed: dict[str, str] = manifest.get("files", {})
    for name, digest in sorted(listed.items()):
        path = root / name
        if not report.check(path.is_file(), f"{name}: listed in the manifest, missing"):
            continue
        report.check(sha256(path.read_bytes()) == digest,
                     f"{name}: its SHA-256 is not the manifest's (the file was changed)")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for extra in sorted(present - set(listed) - UNLISTED - {"__pycache__"}):
        if "__pycache__" not in extra:
            report.check(False, f"{extra}: not in the manifest (added after export)")


# --- the audit log --------------------------------------------------------------------------

def audit_rows(root: Path) -> list[dict[str, Any]]:
    path = root / "audit" / "rows.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def check_rows(rows: list[dict[str, Any]], manifest: dict[str, Any], report: Report) -> None:
    expected = manifest.get("audit_rows", [])
    report.check([r.get("id") for r in rows] == expected,
                 "audit/rows.jsonl: the rows are the manifest's, in its order "
                 f"(rows {[r.get('id') for r in rows]} against {expected})")
    for r in rows:
        digest = sha256((r["prev_hash"] + canonical_json(r["content"])).encode())
        report.check(digest == r["row_hash"],
                     f"audit row {r['id']}: its content does not match its hash "
                     "(the row was edited)")


def check_head(root: Path, head: dict[str, Any]) -> bool:
    """The head's seal signature (and its timestamp) over its ``signed`` bytes, which must
    state the size and root the head claims."""
    data = head["signed"].encode()
    signed = cms.ContentInfo.load(bytes.fromhex(head["signature"]))["content"]
    status = asyncio.run(async_validate_detached_cms(
        data, signed, signer_validation_context=context(root),
        ts_validation_context=context(root), key_usage_settings=KEY_USAGE))
    stated = json.loads(data)
    timestamped = status.timestamp_validity is not None and status.timestamp_validity.trusted
    return bool(status.intact and status.valid and status.trusted and timestamped
                and stated["tree_size"] == head["tree_size"]
                and stated["root_hash"] == head["root_hash"])


def check_proofs(root: Path, rows: list[dict[str, Any]], report: Report) -> None:
    """Each row's inclusion proof against the signed tree head."""
    head_path = root / "audit" / "tree_head.json"
    if not report.check(head_path.is_file(), "audit/tree_head.json: present"):
        return
    sys.path.insert(0, str(root))
    import merkle  # the bundle's copy of dealdesk's store/merkle.py (standard library only)

    head = json.loads(head_path.read_text(encoding="utf-8"))
    proofs = json.loads((root / "audit" / "proofs.json").read_text(encoding="utf-8"))
    try:
        signed = check_head(root, head)
    except Exception as e:  # damaged: say what failed
        report.check(False, f"audit/tree_head.json: its signature can't be read ({e})")
        return
    report.check(signed, "audit/tree_head.json: the tree head's seal signature and "
                 "timestamp validate, over the size and root it states")
    for r in rows:
        proof = proofs.get(str(r["id"]))
        report.check(proof is not None and merkle.verify_row_inclusion(r, proof, head),
                     f"audit row {r['id']}: its inclusion proof does not lead to the signed "
                     "tree head's root")


# --- documents and signatures ---------------------------------------------------------------

def named_hashes(rows: list[dict[str, Any]]) -> set[str]:
    """Every SHA-256 an audit row names."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and len(value) == 64 and \
                all(c in "0123456789abcdef" for c in value):
            found.add(value)

    for r in rows:
        walk(r["content"].get("data", {}))
    return found


def check_documents(root: Path, rows: list[dict[str, Any]], report: Report) -> None:
    for path in sorted((root / "documents").glob("*")):
        report.check(sha256(path.read_bytes()) == path.stem,
                     f"documents/{path.name}: its bytes do not hash to its name "
                     "(the document was replaced)")
    named = named_hashes(rows)
    for path in sorted((root / "signed").glob("*.pdf")):
        report.check(sha256(path.read_bytes()) in named,
                     f"signed/{path.name}: no audit row names this file's SHA-256")


async def _signature_ok(emb: Any, root: Path) -> tuple[bool, str]:
    if emb.sig_object_type == "/DocTimeStamp":
        stamp = await async_validate_pdf_timestamp(emb, context(root))
        return bool(stamp.intact and stamp.valid and stamp.trusted), "document timestamp"
    status = await async_validate_pdf_signature(emb, context(root),
                                                key_usage_settings=KEY_USAGE)
    token = status.timestamp_validity
    if not status.trusted and token is not None and token.trusted:
        # The signer's certificate expired after signing: judge it when the timestamp says
        # the signature existed.
        status = await async_validate_pdf_signature(
            emb, context(root, token.timestamp), ts_validation_context=context(root),
            key_usage_settings=KEY_USAGE)
    level = status.modification_level
    unchanged = level is not None and level != ModificationLevel.OTHER and status.docmdp_ok
    ok = bool(status.intact and status.valid and status.trusted and unchanged)
    return ok, f"signed by {status.signing_cert.subject.human_friendly}"


def check_signed_pdfs(root: Path, report: Report) -> None:
    for path in sorted((root / "signed").glob("*.pdf")):
        try:
            reader = PdfFileReader(io.BytesIO(path.read_bytes()))
            signatures = reader.embedded_signatures
        except Exception as e:
            report.check(False, f"signed/{path.name}: not a readable PDF ({e})")
            continue
        report.check(bool(signatures), f"signed/{path.name}: carries signatures")
        for emb in signatures:
            try:
                ok, who = asyncio.run(_signature_ok(emb, root))
            except Exception as e:
                ok, who = False, f"unreadable ({e})"
            report.check(ok, f"signed/{path.name}: signature {emb.field_name!r} ({who}) is "
                         "intact, trusted and unchanged since signing")


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    report = Report()
    manifest = check_manifest_signature(root, report)
    if manifest is not None:
        check_files(root, manifest, report)
        rows = audit_rows(root)
        check_rows(rows, manifest, report)
        check_proofs(root, rows, report)
        check_documents(root, rows, report)
        check_signed_pdfs(root, report)
    if report.failures:
        print(f"\n{len(report.failures)} check(s) FAILED, {report.passed} passed.")
        return 1
    print(f"All {report.passed} checks passed: the bundle is intact and every signature "
          "validates.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
