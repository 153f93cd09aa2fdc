"""The organisation seal in a PKCS#11 token (SoftHSM2): provisioned once by the CLI command's
function, then the certificate of completion is sealed through the token and validates, and so
does a signed tree head of the audit log."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from documents import signing
from documents.hsm import HsmConfig, HsmError, HsmSeal, provision_seal
from documents.pki import Pki
from documents.timestamps import timestamper
from store import audit
from store.db import make_engine, make_session_factory, write_lock
from tests.pdfs import contract_pdf, pdfsig_report, pyhanko_verdicts
from web.services import transparency

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
pytestmark = pytest.mark.skipif(not Path(MODULE).exists() or not shutil.which("softhsm2-util"),
                                reason="SoftHSM2 is not installed (scripts/bootstrap.sh does)")


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HsmConfig:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    # Before the module is loaded: SoftHSM reads its configuration when initialised.
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "dealdesk-test",
                    "--so-pin", "5678", "--pin", "1234"], check=True, capture_output=True)
    return HsmConfig(MODULE, "dealdesk-test", "1234")


async def test_seal_with_a_key_in_the_token(token: HsmConfig, tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki", "pw", org_name="Acme HSM", base_url="http://127.0.0.1:9")
    with pytest.raises(HsmError, match="seal-hsm"):
        HsmSeal(pki, token)
    cert = await asyncio.to_thread(provision_seal, pki, token)
    again = await asyncio.to_thread(provision_seal, pki, token)  # the same key, reused
    assert again.public_key() == cert.public_key()
    seal = HsmSeal(pki, token)
    try:
        doc = signing.prepare_fields(contract_pdf(2), [signing.FieldSpec("seal", 0, (0, 0, 0, 0))])
        sealed = await asyncio.to_thread(
            signing.sign_field, doc, signing.SignatureSpec("seal", "Certificate", certify=True),
            seal.signer(), timestamper(pki))
    finally:
        seal.close()
    (v,) = await asyncio.to_thread(pyhanko_verdicts, sealed, pki)
    assert v.intact and v.valid and v.trusted and v.docmdp_ok
    poppler = await asyncio.to_thread(pdfsig_report, sealed, pki)
    assert poppler["seal"] == ("Signature is Valid.", "Certificate is Trusted.")


def test_a_wrong_pin_is_a_clear_error(token: HsmConfig, tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki", "pw", org_name="Acme HSM", base_url="http://127.0.0.1:9")
    wrong = HsmConfig(token.module, token.token_label, "0000")
    with pytest.raises(HsmError, match="cannot open token 'dealdesk-test'"):
        provision_seal(pki, wrong)


def test_a_tree_head_sealed_in_the_token(token: HsmConfig, tmp_path: Path,
                                         database_url: str) -> None:
    pki = Pki(tmp_path / "pki", "pw", org_name="Acme HSM", base_url="http://127.0.0.1:9")
    provision_seal(pki, token)
    seal = HsmSeal(pki, token)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as s:
            write_lock(s)
            audit.append(s, event_key="hsm-1", actor="system:test", action="thing.done",
                         entity="quote:1", data={})
            s.commit()
            head = transparency.issue_tree_head(s, pki, timestamper(pki), seal=seal.signer)
            assert head is not None
            assert transparency.check_head(s, head, pki.trust_roots()) == ""
    finally:
        seal.close()
        engine.dispose()
