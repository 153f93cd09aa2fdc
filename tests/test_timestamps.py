"""The app's RFC 3161 TSA over HTTP, checked by openssl; the CRLs it publishes; an external
TSA that fails makes signing fail (never an untimestamped signature)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest
from asn1crypto import algos, cms, tsp
from cryptography import x509
from pyhanko.sign.timestamps.api import TimeStamper

from dealdesk.devserver import free_port
from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from documents import signing
from documents.timestamps import HttpTimeStamper, TimestampRequestError, internal_timestamper
from tests.pdfs import contract_pdf, pyhanko_verdicts


def _request(data: bytes) -> bytes:
    return bytes(tsp.TimeStampReq({
        "version": 1, "cert_req": True, "nonce": 12345,
        "message_imprint": tsp.MessageImprint({
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "hashed_message": hashlib.sha256(data).digest()})}).dump())


async def test_the_tsa_answers_rfc3161_and_openssl_verifies(
        live_url: str, settings: Settings, tmp_path: Path) -> None:
    data = b"the contract bytes"
    async with httpx.AsyncClient(base_url=live_url) as http:
        r = await http.post("/tsa", content=_request(data),
                            headers={"content-type": "application/timestamp-query"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/timestamp-reply"
        bad = await http.post("/tsa", content=b"garbage",
                              headers={"content-type": "application/timestamp-query"})
        assert bad.status_code == 422 and "malformed timestamp request" in bad.text
        crl = await http.get("/pki/issuing.crl")
        assert crl.status_code == 200
        x509.load_der_x509_crl(crl.content)
    reply = tsp.TimeStampResp.load(r.content)
    assert reply["status"]["status"].native == "granted"
    (tmp_path / "reply.tsr").write_bytes(r.content)
    (tmp_path / "data").write_bytes(data)
    pki = settings.pki_dir
    (tmp_path / "chain.pem").write_bytes((pki / "issuing.pem").read_bytes()
                                         + (pki / "root.pem").read_bytes())
    out = subprocess.run(["openssl", "ts", "-verify", "-in",  # noqa: ASYNC221 - quick
                          str(tmp_path / "reply.tsr"),
                          "-data", str(tmp_path / "data"), "-CAfile", str(pki / "root.pem"),
                          "-untrusted", str(tmp_path / "chain.pem")],
                         capture_output=True, text=True, timeout=30)
    assert "Verification: OK" in out.stdout, out.stdout + out.stderr


async def test_signing_through_an_external_tsa_url(live_url: str, settings: Settings) -> None:
    pki = open_pki(settings)
    doc = signing.prepare_fields(contract_pdf(1), [signing.FieldSpec("s", 0, (72, 72, 272, 126))])
    signer = signing.signer_for(pki.issue_signer("Ann", "ann@x.test"),
                                pki.chain)
    signed = await asyncio.to_thread(
        signing.sign_field, doc, signing.SignatureSpec("s", "ok", certify=True), signer,
        HttpTimeStamper(f"{live_url}/tsa"))
    (v,) = await asyncio.to_thread(pyhanko_verdicts, signed, pki)
    assert v.intact and v.valid and v.trusted


def test_a_failing_tsa_fails_the_signature(settings: Settings) -> None:
    pki = open_pki(settings)
    doc = signing.prepare_fields(contract_pdf(1), [signing.FieldSpec("s", 0, (72, 72, 272, 126))])
    signer = signing.signer_for(pki.issue_signer("Ann", "ann@x.test"),
                                pki.chain)
    dead = HttpTimeStamper(f"http://127.0.0.1:{free_port()}/tsa", timeout=2)
    with pytest.raises(TimestampRequestError, match="unreachable"):
        signing.sign_field(doc, signing.SignatureSpec("s", "ok"), signer, dead)


def _shape(token: cms.ContentInfo) -> dict[str, object]:
    """A token without the values that differ per token (time, serial, nonce, signature)."""
    sd = token["content"]
    si = sd["signer_infos"][0]
    info = sd["encap_content_info"]["content"].parsed
    return {
        "version": sd["version"].native, "digests": sd["digest_algorithms"].dump(),
        "content_type": sd["encap_content_info"]["content_type"].native,
        "certificates": sorted(c.dump() for c in sd["certificates"]),
        "signer": [si[k].dump() for k in ("version", "sid", "digest_algorithm",
                                          "signature_algorithm")],
        "signed_attrs": sorted(a["type"].native for a in si["signed_attrs"]),
        "signing_certificate": next(a.dump() for a in si["signed_attrs"]
                                    if a["type"].native == "signing_certificate"),
        "tst": {k: info[k].dump() for k in ("version", "policy", "message_imprint", "tsa")},
    }


async def test_template_tokens_match_pyhankos_responder_and_openssl_verifies(
        settings: Settings, tmp_path: Path) -> None:
    pki = open_pki(settings)
    tsa = internal_timestamper(pki)
    data = b"the contract bytes"
    digest = hashlib.sha256(data).digest()
    ours = await tsa.async_timestamp(digest, "sha256")
    theirs = await TimeStamper.async_timestamp(tsa, digest, "sha256")  # request → response
    assert _shape(ours) == _shape(theirs)
    (tmp_path / "token.der").write_bytes(ours.dump())
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "chain.pem").write_bytes((settings.pki_dir / "issuing.pem").read_bytes()
                                         + (settings.pki_dir / "root.pem").read_bytes())
    out = await asyncio.to_thread(subprocess.run, [
        "openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"),
        "-data", str(tmp_path / "data"), "-CAfile", str(settings.pki_dir / "root.pem"),
        "-untrusted", str(tmp_path / "chain.pem")], capture_output=True, text=True, timeout=30)
    assert "Verification: OK" in out.stdout, out.stdout + out.stderr
    (tmp_path / "data").write_bytes(b"other bytes")
    out = await asyncio.to_thread(subprocess.run, [
        "openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"),
        "-data", str(tmp_path / "data"), "-CAfile", str(settings.pki_dir / "root.pem"),
        "-untrusted", str(tmp_path / "chain.pem")], capture_output=True, text=True, timeout=30)
    assert "Verification: OK" not in out.stdout
