"""documents.intake: every awkward PDF ends accepted-and-signable or refused with its reason.

Accepted documents are signed the way an envelope signs them (PARTS.md): all missing signature
fields created first in one update, then two approval signatures, each an incremental update.
Then pyHanko (strict reader, diff analysis) and poppler's ``pdfsig`` must both call every
signature valid. Fixtures: tests/fixtures/robustness/MANIFEST.md.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import keys as akeys
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.crypt.permissions import StandardPermissions
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from reportlab.pdfgen import canvas
from typer.testing import CliRunner

from dealdesk.cli import app as cli
from documents import signing
from documents.intake import (
    AcceptedPdf,
    Anchor,
    DocumentRefused,
    RefusalCode,
    accept_pdf,
    find_anchors,
)
from documents.pki import Pki as InternalPki
from documents.sandbox import Limits
from documents.timestamps import timestamper
from documents.verify import verify_pdf
from tests.pdfs import contract_pdf

FIXTURES = Path(__file__).parent / "fixtures" / "robustness"
MAX = 10_000_000


@dataclass(frozen=True)
class Accept:
    pages: int
    empty_fields: tuple[str, ...] = ()
    signatures: int = 0
    rewritten: bool = True
    notes: int = 0


# What intake must make of every file in tests/fixtures/robustness/.
EXPECTED: dict[str, Accept | RefusalCode] = {
    "pdfjs__textfields.pdf": Accept(pages=1),
    "pdfjs__xfa_issue14315.pdf": RefusalCode.XFA_FORM,
    "pyhanko__minimal-hybrid-xref-mswordstyle.pdf": Accept(pages=1),
    "pyhanko__minimal-pubkey-aes256.pdf": RefusalCode.ENCRYPTED,
    "pyhanko__minimal-startxref-obo1.pdf": Accept(pages=1),
    "pyhanko__minimal-two-fields-tagged.pdf": Accept(pages=1, empty_fields=("Sig1", "Sig2")),
    "pyhanko__minimal-with-field-aes256.pdf": RefusalCode.ENCRYPTED,
    "pyhanko__minimal-with-textfield-group.pdf": Accept(pages=1, empty_fields=("Sig1",)),
    "pyhanko__simple-acroform-states.pdf": Accept(pages=1, empty_fields=("Signature",)),
    "qpdf__V4-aes.pdf": Accept(pages=30, notes=1),
    "qpdf__digitally-signed.pdf": Accept(pages=1, signatures=1, rewritten=False),
    "qpdf__enc-R2_V1_U-view_O-master.pdf": RefusalCode.ENCRYPTED,
    "qpdf__enc-XI-R6_V5_U-view_O-master.pdf": RefusalCode.ENCRYPTED,
    "qpdf__form-no-need-appearances.pdf": Accept(pages=1),
    "qpdf__incremental-1.pdf": Accept(pages=1),
    "safedocs__CompactedPDFSyntaxTest.pdf": RefusalCode.MALFORMED,
}


# -- a throwaway PKI, trusted by pyHanko and by pdfsig's NSS database -------------------------


@dataclass(frozen=True)
class Pki:
    ca: ax509.Certificate
    parties: tuple[signers.SimpleSigner, ...]
    """One signer per party: poppler 22.12's pdfsig calls a certificate it has already
    verified in the same file "Unknown issue", so each party has its own."""
    nss_dir: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dealdesk Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    a_ca = ax509.Certificate.load(ca.public_bytes(serialization.Encoding.DER))
    parties = tuple(_signer(ca_key, ca_name, a_ca, f"Party {n}", now) for n in (1, 2))
    nss = root / "nss"
    nss.mkdir()
    pem = root / "ca.pem"
    pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "ca", "-t", "CT,C,C",
                    "-i", str(pem)], check=True)
    return Pki(a_ca, parties, nss)


def _signer(ca_key: rsa.RSAPrivateKey, ca_name: x509.Name, a_ca: ax509.Certificate,
            name: str, now: dt.datetime) -> signers.SimpleSigner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return signers.SimpleSigner(
        signing_cert=ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=akeys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore.from_certs([a_ca]))


# -- signing the way an envelope does, and validating ---------------------------------------


async def sign_two_parties(accepted: AcceptedPdf, pki: Pki) -> bytes:
    """Create missing fields in one update, then sign two fields in two more updates."""
    names = list(accepted.empty_signature_fields[:2])
    data = accepted.data
    missing = [f"Party{i}" for i in range(1, 3)][: 2 - len(names)]
    if missing:
        w = IncrementalPdfFileWriter(io.BytesIO(data))
        for i, name in enumerate(missing):
            fields.append_signature_field(w, fields.SigFieldSpec(
                name, on_page=0, box=(10 + 110 * i, 10, 110 + 110 * i, 50)))
        buf = io.BytesIO()
        w.write(buf)
        data = buf.getvalue()
        names += missing
    for name, signer in zip(names, pki.parties, strict=True):
        w = IncrementalPdfFileWriter(io.BytesIO(data))
        out = await signers.async_sign_pdf(
            w, signers.PdfSignatureMetadata(field_name=name), signer=signer,
            existing_fields_only=True)
        data = out.getvalue()
    return data


async def assert_valid(data: bytes, pki: Pki, ours: int) -> None:
    """The last ``ours`` signatures: intact, valid, trusted; earlier ones intact and sound."""
    reader = PdfFileReader(io.BytesIO(data))  # strict, as validators read it
    sigs = reader.embedded_signatures
    assert len(sigs) >= ours
    for i, sig in enumerate(sigs):
        status = await async_validate_pdf_signature(
            sig, ValidationContext(trust_roots=[pki.ca]))
        assert status.intact and status.valid, (i, status.pretty_print_details())
        assert status.modification_level is not None
        assert status.modification_level <= ModificationLevel.FORM_FILLING, i
        assert status.docmdp_ok, i
        if i >= len(sigs) - ours:
            assert status.trusted and status.bottom_line, (i, status.pretty_print_details())
    verdicts = pdfsig(data, pki)
    assert len(verdicts) == len(sigs)
    for sig_valid, cert in verdicts[-ours:]:
        assert sig_valid == "Signature is Valid."
        assert cert == "Certificate is Trusted."
    assert all(v == "Signature is Valid." for v, _ in verdicts)


def pdfsig(data: bytes, pki: Pki) -> list[tuple[str, str]]:
    """(signature validation, certificate validation) per signature, as pdfsig reports."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signed.pdf"
        path.write_bytes(data)
        done = subprocess.run(["pdfsig", "-nssdir", f"sql:{pki.nss_dir}", str(path)],
                              capture_output=True, timeout=60, check=False)
    return re.findall(r"Signature Validation: (.+)\n\s*- Certificate Validation: (.+)",
                      done.stdout.decode())


# -- the robustness set -------------------------------------------------------------------


def test_every_fixture_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.pdf")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_robustness_fixture(name: str, pki: Pki) -> None:
    upload = (FIXTURES / name).read_bytes()
    expected = EXPECTED[name]
    if isinstance(expected, RefusalCode):
        with pytest.raises(DocumentRefused) as refused:
            accept_pdf(upload, filename=name, max_bytes=MAX)
        assert refused.value.code == expected
        assert name in refused.value.reason
        return
    accepted = accept_pdf(upload, filename=name, max_bytes=MAX)
    assert accepted.page_count == expected.pages == len(accepted.pages)
    assert accepted.empty_signature_fields == expected.empty_fields
    assert accepted.signature_count == expected.signatures
    assert accepted.rewritten == expected.rewritten
    assert (accepted.data == upload) == (not expected.rewritten)
    assert len(accepted.notes) == expected.notes
    assert all(p.width > 0 and p.height > 0 for p in accepted.pages)
    signed = await sign_two_parties(accepted, pki)
    assert signed.startswith(accepted.data)  # incremental: the stored bytes stay a prefix
    await assert_valid(signed, pki, ours=2)


# -- refusals ---------------------------------------------------------------------------


def simple_pdf(*, pages: int = 1, text: str = "Agreement") -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(612, 792))
    for i in range(pages):
        c.drawString(72, 700, f"{text} page {i + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


@pytest.mark.parametrize(("data", "filename", "code", "says"), [
    (b"", "contract.pdf", RefusalCode.EMPTY, "empty"),
    (b"%PDF-1.7\n" + b"x" * 2000, "contract.pdf", RefusalCode.MALFORMED, "damaged"),
    (b"PK\x03\x04" + b"\0" * 100, "contract.pdf", RefusalCode.NOT_PDF, "Word document"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "scan.pdf", RefusalCode.NOT_PDF, "image"),
    (b"garbage" * 10, "contract.pdf", RefusalCode.NOT_PDF, "not a PDF"),
])
def test_refuses_what_is_not_a_usable_pdf(data: bytes, filename: str, code: RefusalCode,
                                          says: str) -> None:
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(data, filename=filename, max_bytes=MAX)
    assert refused.value.code == code
    assert filename in refused.value.reason and says in refused.value.reason


def test_refuses_too_large_naming_the_limit() -> None:
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(simple_pdf(), filename="big.pdf", max_bytes=1000)
    assert refused.value.code == RefusalCode.TOO_LARGE
    assert "1 KB limit" in refused.value.reason


def test_refuses_extension_mismatch_and_junk_before_header() -> None:
    pdf = simple_pdf()
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(pdf, filename="contract.docx", max_bytes=MAX)
    assert refused.value.code == RefusalCode.NOT_PDF and ".pdf" in refused.value.reason
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(b"junk\n" + pdf, filename="contract.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.MALFORMED


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_pdf_is_refused_not_crashed(cut: float) -> None:
    pdf = (FIXTURES / "qpdf__V4-aes.pdf").read_bytes()
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(pdf[: int(len(pdf) * cut)], filename="cut.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.MALFORMED


def test_corrupted_bytes_never_raise_anything_else() -> None:
    pdf = bytearray(simple_pdf(pages=3))
    for offset in range(9, len(pdf), 37):
        broken = bytearray(pdf)
        broken[offset: offset + 5] = b"\xff<<[("
        try:
            accept_pdf(bytes(broken), filename="x.pdf", max_bytes=MAX)
        except DocumentRefused as e:
            assert e.code == RefusalCode.MALFORMED


async def certified(level: fields.MDPPerm, pki: Pki, *, extra_field: str | None) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(simple_pdf()))
    if extra_field:  # fields come before certification (PARTS.md)
        fields.append_signature_field(w, fields.SigFieldSpec(extra_field, on_page=0,
                                                             box=(300, 50, 450, 100)))
    out = await signers.async_sign_pdf(
        w, signers.PdfSignatureMetadata(field_name="Author", certify=True,
                                        docmdp_permissions=level), signer=pki.parties[0])
    return out.getvalue()


async def test_refuses_certified_no_changes(pki: Pki) -> None:
    data = await certified(fields.MDPPerm.NO_CHANGES, pki, extra_field=None)
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(data, filename="certified.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.CERTIFIED_NO_CHANGES
    assert "no changes allowed" in refused.value.reason


async def test_certified_fill_forms_is_accepted_and_signable(pki: Pki) -> None:
    data = await certified(fields.MDPPerm.FILL_FORMS, pki, extra_field="Buyer")
    accepted = accept_pdf(data, filename="certified.pdf", max_bytes=MAX)
    assert accepted.certification == 2
    assert accepted.empty_signature_fields == ("Buyer",)
    assert not accepted.rewritten and accepted.data == data
    w = IncrementalPdfFileWriter(io.BytesIO(accepted.data))
    out = await signers.async_sign_pdf(w, signers.PdfSignatureMetadata(field_name="Buyer"),
                                       signer=pki.parties[1], existing_fields_only=True)
    await assert_valid(out.getvalue(), pki, ours=2)


def encrypted_without_user_password(perms: StandardPermissions) -> bytes:
    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(simple_pdf())))
    writer.encrypt("owner-secret", "", perms=perms)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_empty_user_password_with_signing_forbidden_is_refused() -> None:
    data = encrypted_without_user_password(StandardPermissions.ALLOW_PRINTING
                                           | StandardPermissions.TOLERATE_MISSING_PDF_MAC)
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(data, filename="locked.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.SIGNING_NOT_PERMITTED


async def test_empty_user_password_allowing_forms_is_decrypted(pki: Pki) -> None:
    data = encrypted_without_user_password(StandardPermissions.ALLOW_FORM_FILLING
                                           | StandardPermissions.TOLERATE_MISSING_PDF_MAC)
    accepted = accept_pdf(data, filename="open.pdf", max_bytes=MAX)
    assert accepted.rewritten and "stored unencrypted" in accepted.notes[0]
    assert PdfFileReader(io.BytesIO(accepted.data)).encrypt_dict is None
    await assert_valid(await sign_two_parties(accepted, pki), pki, ours=2)


def with_xfa(*, fields_too: bool, needs_rendering: bool = False) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(simple_pdf()))
    if fields_too:
        fields.append_signature_field(w, fields.SigFieldSpec("Buyer", on_page=0,
                                                             box=(300, 50, 450, 100)))
        form = w.root["/AcroForm"]
    else:
        form = generic.DictionaryObject({generic.NameObject("/Fields"): generic.ArrayObject()})
        w.root[generic.NameObject("/AcroForm")] = w.add_object(form)
    xfa = generic.StreamObject(stream_data=b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>")
    form[generic.NameObject("/XFA")] = w.add_object(xfa)
    if needs_rendering:
        w.root[generic.NameObject("/NeedsRendering")] = generic.BooleanObject(True)
    w.update_root()
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def test_static_xfa_is_stripped_with_a_note() -> None:
    accepted = accept_pdf(with_xfa(fields_too=True), filename="form.pdf", max_bytes=MAX)
    assert "XFA" in accepted.notes[0]
    assert accepted.empty_signature_fields == ("Buyer",)
    form = PdfFileReader(io.BytesIO(accepted.data)).root["/AcroForm"]
    assert "/XFA" not in form


@pytest.mark.parametrize(("fields_too", "needs_rendering"), [(False, False), (True, True)])
def test_dynamic_xfa_is_refused(fields_too: bool, needs_rendering: bool) -> None:
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(with_xfa(fields_too=fields_too, needs_rendering=needs_rendering),
                   filename="form.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.XFA_FORM


# -- uploads that are already signed ----------------------------------------------------------
# A customer signs with their own tools and CA (pyHanko's stock signer here); dealdesk doesn't
# trust that CA, but the signature must hold, and what we seal must pass `dealdesk verify`.


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> InternalPki:
    return InternalPki(tmp_path_factory.mktemp("ours"), "ours-passphrase", org_name="Acme Test",
                       base_url="http://127.0.0.1:9")


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> InternalPki:
    return InternalPki(tmp_path_factory.mktemp("theirs"), "their-passphrase",
                       org_name="Customer Co", base_url="http://127.0.0.1:9")


def presigned(theirs: InternalPki, *, certify: bool = False) -> bytes:
    """A two-page contract Jane Doe signed elsewhere (field Sig1 on page 1, PAdES); certified
    (form filling allowed) with an empty Buyer field, if asked."""
    writer = IncrementalPdfFileWriter(io.BytesIO(contract_pdf(pages=2)))
    if certify:
        fields.append_signature_field(writer, fields.SigFieldSpec(
            "Buyer", on_page=1, box=(300, 60, 490, 110)))
    jane = theirs.issue_signer("Jane Doe", "jane@customer.test")
    out = signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="Sig1", certify=certify,
                                     docmdp_permissions=fields.MDPPerm.FILL_FORMS,
                                     subfilter=fields.SigSeedSubFilter.PADES),
        signer=signers.SimpleSigner(signing_cert=jane.asn1_cert, signing_key=jane.asn1_key,
                                    cert_registry=SimpleCertificateStore.from_certs(
                                        theirs.chain)),
        new_field_spec=fields.SigFieldSpec("Sig1", on_page=0, box=(72, 60, 262, 110)),
    ).sign_pdf(writer)
    return bytes(out.getvalue())


def sealed_as_an_envelope(upload: bytes, ours: InternalPki) -> bytes:
    """What EnvelopeWorkflow's activities do with an accepted upload: one signer's field
    (prepare_envelope), their signature (apply_signature: an approval signature, since the
    upload is signed already), then the seal (seal_envelope)."""
    accepted = accept_pdf(upload, filename="contract.pdf", max_bytes=MAX)
    assert accepted.signature_count == 1 and not accepted.rewritten
    assert accepted.data == upload
    ts = timestamper(ours)
    if accepted.certification is None:
        field = "sig-r1"
        doc = signing.prepare_fields(accepted.data,
                                     [signing.FieldSpec(field, 1, (72, 60, 262, 110))])
    else:  # a certified upload is signed in its own empty field: no new field
        field = accepted.empty_signature_fields[0]
        doc = signing.prepare_fields(accepted.data, [])
    doc = signing.sign_field(
        doc, signing.SignatureSpec(field, "Typed name: Bob Buyer",
                                   certify=accepted.signature_count == 0),
        signing.signer_for(ours.issue_signer("Bob Buyer", "bob@acme.test"), ours.chain), ts)
    certs, crls = ours.validation_material()
    return signing.seal(doc, certs=certs, crls=crls, timestamper=ts)


def test_a_validly_presigned_upload_is_sealed_and_passes_dealdesk_verify(
        ours: InternalPki, theirs: InternalPki, tmp_path: Path) -> None:
    sealed = sealed_as_an_envelope(presigned(theirs), ours)

    report = verify_pdf(sealed, ours.trust_roots())
    assert report.untampered  # nothing changed that any signature did not allow
    jane, bob, stamp = report.signatures
    assert (jane.field_name, jane.signer_name, bob.field_name) == ("Sig1", "Jane Doe", "sig-r1")
    assert str(stamp.kind) == "document timestamp"
    assert bob.ok and stamp.ok and bob.pades_level == "B-LTA"
    # Jane's CA is not ours: her signature holds, but only its trust fails...
    assert jane.integrity_ok and not jane.trusted and not jane.ok
    assert jane.modification_level == "FORM_FILLING" and jane.docmdp_ok
    assert jane.problems == (
        "the signer's certificate (issued by Customer Co Issuing CA) does not lead to a "
        "trusted root",)
    assert not report.valid
    # ...so `dealdesk verify` passes once it is told to trust her CA as well.
    assert verify_pdf(sealed, ours.trust_roots() + theirs.trust_roots()).valid
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    ours_root, their_root = (str(p.directory / "root.pem") for p in (ours, theirs))
    runner = CliRunner()
    only_ours = runner.invoke(cli, ["verify", str(path), "--trust", ours_root])
    assert only_ours.exit_code == 1 and "NOT VALID" in only_ours.stdout
    assert "Sig1: the signer's certificate (issued by Customer Co" in only_ours.stdout
    both = runner.invoke(cli, ["verify", str(path), "--trust", ours_root, "--trust",
                               their_root])
    assert both.exit_code == 0, both.stdout


def test_a_certified_upload_sealed_as_an_envelope_passes_dealdesk_verify(
        ours: InternalPki, theirs: InternalPki) -> None:
    sealed = sealed_as_an_envelope(presigned(theirs, certify=True), ours)
    assert verify_pdf(sealed, ours.trust_roots() + theirs.trust_roots()).valid


def _changed_page_text(upload: bytes) -> bytes:
    assert upload.count(b"clause 7 as written") == 2  # once a page, both signed
    return upload.replace(b"clause 7 as written", b"clause 9 as written", 1)


def _new_page_content(upload: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(upload))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 24 Tf 72 720 Td (Price: 1 USD) Tj ET"))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _garbled_signature(upload: bytes) -> bytes:
    contents = re.search(rb"/Contents <([0-9a-fA-F]+)>", upload)
    assert contents
    return upload[:contents.start(1)] + b"00" * 20 + upload[contents.start(1) + 40:]


@pytest.mark.parametrize(("tamper", "says"), [
    (_changed_page_text, "by Jane Doe does not match the document: the signed content was "
                         "changed after signing (its digest no longer matches)"),
    (_new_page_content, "by Jane Doe does not match the document: the document was changed "
                        "after this signature in ways a later signer may not make"),
    # No signer to name: the container that would say who signed is what is broken.
    (_garbled_signature, "does not match the document: the signature cannot be checked: "
                         "the signature data is malformed"),
], ids=["bytes-flipped-in-the-signed-range", "page-replaced-in-a-later-revision",
        "garbled-cms"])
def test_a_tampered_presigned_upload_is_refused_naming_the_signature(
        theirs: InternalPki, tamper: Callable[[bytes], bytes], says: str) -> None:
    upload = presigned(theirs)
    accept_pdf(upload, filename="contract.pdf", max_bytes=MAX)  # as signed, it is fine
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(tamper(upload), filename="contract.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.SIGNATURE_INVALID == "signature_invalid"
    reason = refused.value.reason
    assert reason.startswith(f"contract.pdf: signature 'Sig1' {says}"), reason
    assert reason.endswith("; ask the sender for the original signed file.")


def test_every_broken_signature_is_named(theirs: InternalPki) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(presigned(theirs)))
    john = theirs.issue_signer("John Roe", "john@customer.test")
    both = signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="Sig2"),
        signer=signers.SimpleSigner(signing_cert=john.asn1_cert, signing_key=john.asn1_key,
                                    cert_registry=SimpleCertificateStore.from_certs(
                                        theirs.chain)),
        new_field_spec=fields.SigFieldSpec("Sig2", on_page=0, box=(300, 60, 490, 110)),
    ).sign_pdf(writer).getvalue()
    assert accept_pdf(both, filename="contract.pdf", max_bytes=MAX).signature_count == 2
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(_new_page_content(both), filename="contract.pdf", max_bytes=MAX)
    assert refused.value.code == RefusalCode.SIGNATURE_INVALID
    assert refused.value.reason.startswith("contract.pdf: signature 'Sig1' by Jane Doe does "
                                           "not match the document: the document was changed")
    assert refused.value.reason.endswith(" ('Sig2' fails too); ask the sender for the original "
                                         "signed file.")


@pytest.mark.parametrize(("limits", "says"), [
    (Limits(seconds=0.001), "within 0.001 s"),
    (Limits(memory_mb=8), "within 8 MB of memory"),
])
def test_signatures_that_cannot_be_checked_within_the_limits_are_refused(
        theirs: InternalPki, limits: Limits, says: str) -> None:
    with pytest.raises(DocumentRefused) as refused:
        accept_pdf(presigned(theirs), filename="contract.pdf", max_bytes=MAX,
                   signature_limits=limits)
    assert refused.value.code == RefusalCode.SIGNATURE_UNVERIFIABLE
    assert refused.value.reason.startswith(
        f"contract.pdf is signed, but its signatures could not be checked {says}; ask the "
        "sender for the unsigned original")


# -- anchors ------------------------------------------------------------------------------


def anchored_pdf() -> bytes:
    """Page 1 plain; 2 rotated 90° with a crop box; 3 a crop box, two anchors; 4-5 rotated."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(612, 792))
    c.setFont("Helvetica", 12)
    c.drawString(100, 500, "[[sign:buyer]]")
    c.showPage()
    c.setPageRotation(90)  # reportlab writes a landscape media box for this page
    c.setCropBox((40, 30, 700, 600))
    c.setFont("Helvetica", 12)
    c.drawString(200, 300, "[[sign:seller]]")
    c.showPage()
    c.setPageRotation(0)
    c.setCropBox((50, 60, 562, 732))
    c.setFont("Helvetica", 12)
    c.drawString(120, 150, "Witness:[[sign:witness_1]]")
    c.drawString(300, 150, "[[sign:Bad Label]] [[nosign]]")
    c.showPage()
    for degrees in (180, 270):
        c.setPageRotation(degrees)
        c.setFont("Helvetica", 12)
        c.drawString(150, 250, f"[[sign:r{degrees}]]")
        c.showPage()
    c.save()
    return buf.getvalue()


def near(anchor: Anchor, x0: float, y0: float, x1: float, y1: float, tol: float = 3) -> bool:
    return all(abs(a - b) <= tol for a, b in
               zip((anchor.x0, anchor.y0, anchor.x1, anchor.y1), (x0, y0, x1, y1), strict=True))


def test_find_anchors_in_user_space() -> None:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    anchors = find_anchors(anchored_pdf())
    assert [(a.page_index, a.label) for a in anchors] == [
        (0, "buyer"), (1, "seller"), (2, "witness_1"), (3, "r180"), (4, "r270")]
    buyer, seller, witness, r180, r270 = anchors
    width = stringWidth("[[sign:buyer]]", "Helvetica", 12)
    assert near(buyer, 100, 500 - 3, 100 + width, 500 + 10), buyer
    width = stringWidth("[[sign:seller]]", "Helvetica", 12)
    assert near(seller, 200, 300 - 3, 200 + width, 300 + 10), seller
    start = 120 + stringWidth("Witness:", "Helvetica", 12)
    width = stringWidth("[[sign:witness_1]]", "Helvetica", 12)
    assert near(witness, start, 150 - 3, start + width, 150 + 10, tol=6), witness
    for anchor in (r180, r270):
        width = stringWidth(f"[[sign:{anchor.label}]]", "Helvetica", 12)
        assert near(anchor, 150, 250 - 3, 150 + width, 250 + 10), anchor


def test_find_anchors_custom_pattern_and_none() -> None:
    assert find_anchors(simple_pdf()) == []
    anchors = find_anchors(anchored_pdf(), pattern=r"\[\[nosign\]\]")
    assert [(a.page_index, a.label) for a in anchors] == [(2, "[[nosign]]")]
