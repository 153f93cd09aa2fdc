"""Signing an envelope PDF: fields first, certify, one revision per signer, seal (B-LTA).
Every output is read back by pyHanko (with diff analysis) and by poppler's pdfsig."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from documents import signing
from documents.pki import Pki, PkiError
from documents.timestamps import timestamper
from tests.pdfs import contract_pdf, pdfsig_report, pyhanko_verdicts

FIELDS = [signing.FieldSpec("sig-buyer1", 19, (72, 60, 262, 110)),
          signing.FieldSpec("sig-buyer2", 19, (300, 60, 490, 110)),
          signing.FieldSpec("sig-cfo", 19, (72, 130, 262, 180))]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"), "test-passphrase", org_name="Acme Test",
               base_url="http://127.0.0.1:9")


def _sign_all(pki: Pki) -> bytes:
    ts = timestamper(pki)
    chain = pki.chain
    doc = signing.prepare_fields(contract_pdf(), FIELDS)
    people = [("Ann Buyer", "ann@buyer.test"), ("Ben Buyer", "ben@buyer.test"),
              ("Cleo CFO", "cfo@acme.test")]
    for n, (field, (name, email)) in enumerate(zip([f.name for f in FIELDS], people,
                                                   strict=True)):
        signer = signing.signer_for(pki.issue_signer(name, email), chain)
        doc = signing.sign_field(doc, signing.SignatureSpec(field, f"Signed as {name}",
                                                            certify=n == 0), signer, ts)
    certs, crls = pki.validation_material()
    return signing.seal(doc, certs=certs, crls=crls, timestamper=ts)


def test_three_signatures_and_a_document_timestamp_validate(pki: Pki) -> None:
    sealed = _sign_all(pki)
    verdicts = pyhanko_verdicts(sealed, pki)
    assert [v.field for v in verdicts if not v.timestamp] == [f.name for f in FIELDS]
    assert sum(v.timestamp for v in verdicts) == 1
    for v in verdicts:
        assert v.intact and v.valid and v.trusted, v
        if not v.timestamp:
            assert v.docmdp_ok, v
            assert v.modification in ("FORM_FILLING", "LTA_UPDATES"), v
    poppler = pdfsig_report(sealed, pki)
    for f in FIELDS:
        assert poppler[f.name] == ("Signature is Valid.", "Certificate is Trusted."), poppler


def test_one_changed_byte_of_page_content_fails_validation(pki: Pki) -> None:
    sealed = bytearray(_sign_all(pki))
    at = sealed.index(b"clause 7 as written")
    sealed[at + len("clause ")] = ord("9")
    verdicts = pyhanko_verdicts(bytes(sealed), pki)
    assert not all(v.intact for v in verdicts)
    poppler = pdfsig_report(bytes(sealed), pki)
    assert any(sig != "Signature is Valid." for sig, _ in poppler.values()), poppler


def _cms_shape(pdf: bytes) -> dict[str, object]:
    """Everything in a signature's CMS container except the values that depend on the
    document bytes, the clock and the randomness."""
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    sd, si = sig.signed_data, sig.signer_info
    return {
        "version": sd["version"].native,
        "digest_algorithms": sd["digest_algorithms"].dump(),
        "encap": sd["encap_content_info"].dump(),
        "certificates": sorted(c.dump() for c in sd["certificates"]),
        "signer": [si[k].dump() for k in ("version", "sid", "digest_algorithm",
                                          "signature_algorithm")],
        "signed_attrs": [(a["type"].native, a.dump() if a["type"].native != "message_digest"
                          else len(a.dump())) for a in si["signed_attrs"]],
        "unsigned_attrs": [a["type"].native for a in si["unsigned_attrs"]],
    }


def test_template_cms_matches_pyhankos_own(pki: Pki) -> None:
    """FastSigner assembles the CMS container from pre-encoded parts; pyHanko's stock signer
    with the same key, chain and timestamper builds the same container."""
    doc = signing.prepare_fields(contract_pdf(2),
                                 [signing.FieldSpec("sig-x", 1, (72, 60, 262, 110))])
    identity = pki.issue_signer("Ann Buyer", "ann@buyer.test")
    stock = signers.SimpleSigner(signing_cert=identity.asn1_cert,
                                 signing_key=identity.asn1_key,
                                 cert_registry=SimpleCertificateStore.from_certs(pki.chain))
    spec = signing.SignatureSpec("sig-x", "Signed as Buyer", certify=True)
    ours = signing.sign_field(doc, spec, signing.signer_for(identity, pki.chain),
                              timestamper(pki))
    theirs = signing.sign_field(doc, spec, stock, timestamper(pki))
    assert _cms_shape(ours) == _cms_shape(theirs)
    for pdf in (ours, theirs):
        [verdict] = pyhanko_verdicts(pdf, pki)
        assert verdict.intact and verdict.valid and verdict.trusted, verdict


def test_fields_are_checked_before_signing(pki: Pki) -> None:
    doc = signing.prepare_fields(contract_pdf(2),
                                 [signing.FieldSpec("sig-x", 1, (72, 60, 262, 110))])
    signer = signing.signer_for(pki.issue_signer("Ann", "ann@x.test"),
                                pki.chain)
    with pytest.raises(signing.SigningError, match="no signature field 'sig-y'"):
        signing.sign_field(doc, signing.SignatureSpec("sig-y", "r"), signer, timestamper(pki))
    once = signing.sign_field(doc, signing.SignatureSpec("sig-x", "r", certify=True), signer,
                              timestamper(pki))
    with pytest.raises(signing.SigningError, match="already signed"):
        signing.sign_field(once, signing.SignatureSpec("sig-x", "r"), signer, timestamper(pki))
    with pytest.raises(signing.SigningError, match="page 5 is not in the document"):
        signing.prepare_fields(contract_pdf(2), [signing.FieldSpec("s", 4, (1, 1, 50, 50))])


def test_pki_is_created_once_and_needs_its_passphrase(tmp_path: Path) -> None:
    first = Pki(tmp_path, "right", org_name="Acme", base_url="http://x")
    again = Pki(tmp_path, "right", org_name="Acme", base_url="http://x")
    assert again.root.cert == first.root.cert
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "root.key").read_bytes()
    with pytest.raises(PkiError, match="wrong passphrase"):
        Pki(tmp_path, "wrong", org_name="Acme", base_url="http://x")
    person = first.issue_signer("Zoë Ångström", "zoe@example.com")
    assert person.cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == \
        "zoe@example.com"
    assert person.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "Zoë Ångström"
    assert (tmp_path / "issued" / f"{person.cert.serial_number:x}.pem").exists()
    first.revoke(person.cert.serial_number)
    crl = x509.load_der_x509_crl(first.crl("issuing"))
    assert crl.get_revoked_certificate_by_serial_number(person.cert.serial_number) is not None


def test_two_processes_opening_a_new_pki_create_one(tmp_path: Path) -> None:
    """`dealdesk up` starts the worker and the web app together; both open the PKI."""
    code = ("import sys, time; from pathlib import Path; from documents.pki import Pki; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "  # start together
            "p = Pki(Path(sys.argv[1]), 'pw', org_name='Acme', base_url='http://x'); "
            "print(p.root.cert.serial_number)")
    at = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "pki"), at],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1
    pki = Pki(tmp_path / "pki", "pw", org_name="Acme", base_url="http://x")
    pki.issuing.cert.verify_directly_issued_by(pki.root.cert)  # one consistent chain
    pki.seal.cert.verify_directly_issued_by(pki.issuing.cert)
    assert pki.seal.cert.public_key() == pki.seal.key.public_key()
