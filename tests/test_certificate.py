"""Certificate of completion: read back with poppler (pdftotext, pdffonts, pdfinfo) and sealed
with pyHanko, the way the envelope's last step will use it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from documents.certificate import (
    CertificateError,
    CompletionRecord,
    DocumentLine,
    EventLine,
    RecipientLine,
    render_certificate,
)

CEST = dt.timezone(dt.timedelta(hours=2))
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=CEST)  # 10:00 UTC
CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
EVIL = "<b>Evil</b> & Co"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_record(events: int = 6) -> CompletionRecord:
    signers_ = (
        ("Zoë Ångström", "zoe@example.test", "203.0.113.7", "email_otp"),
        ("Łukasz Wąsik", "lukasz@example.test", "198.51.100.23", "access_code"),
        (EVIL, "evil@example.test", "2001:db8::42", None),
    )
    lines = []
    for i in range(events):
        name, email, ip, auth = signers_[i % 3]
        lines.append(EventLine(
            at=T0 + dt.timedelta(minutes=i), actor=name, actor_email=email,
            action=f"Step {i + 1} done", ip_address=ip, user_agent=f"{CHROME} run/{i + 1}",
            auth_method=auth,  # type: ignore[arg-type]
            detail="Reason: <i>not</i> needed" if i == 2 else ""))
    return CompletionRecord(
        envelope_id="env-4242", title=f"Master services agreement with {EVIL}",
        sender_name="Ines Ortiz", sender_email="ines@dealdesk.test",
        created_at=T0, completed_at=T0 + dt.timedelta(hours=5, seconds=7),
        documents=(DocumentLine("MSA - Evil & Co.pdf", 12, sha("msa"), sha("msa sealed")),
                   DocumentLine("Order form.pdf", 2, sha("of"), sha("of sealed"))),
        recipients=(
            RecipientLine("Łukasz Wąsik", "lukasz@example.test", "signer", 2, "access_code",
                          "signed", T0 + dt.timedelta(hours=2)),
            RecipientLine("Zoë Ångström", "zoe@example.test", "signer", 1, "email_otp",
                          "signed", T0 + dt.timedelta(hours=1)),
            RecipientLine(EVIL, "evil@example.test", "approver", 3, "none", "approved",
                          T0 + dt.timedelta(hours=3)),
            RecipientLine("Legal archive", "archive@dealdesk.test", "cc", 4, "none",
                          "delivered", None),
        ),
        events=tuple(lines), issuer="Dealdesk Demo GmbH")


def pdf_text(pdf: bytes, page: int | None = None, *, layout: bool = False) -> str:
    args = ["pdftotext", "-enc", "UTF-8"] + (["-layout"] if layout else [])
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    out = subprocess.run([*args, "-", "-"], input=pdf, capture_output=True, check=True)
    return out.stdout.decode()


def pdf_tool(tool: str, pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "c.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, str(path)], capture_output=True, check=True, text=True).stdout


def page_count(pdf: bytes, tmp_path: Path) -> int:
    info = pdf_tool("pdfinfo", pdf, tmp_path)
    found = re.search(r"^Pages:\s+(\d+)", info, re.M)
    assert found
    return int(found.group(1))


@pytest.fixture(scope="module")
def small_pdf() -> bytes:
    return render_certificate(make_record())


@pytest.fixture(scope="module")
def long_pdf() -> bytes:
    return render_certificate(make_record(events=300))


def test_shows_envelope_documents_recipients_and_events(small_pdf: bytes) -> None:
    text = pdf_text(small_pdf)
    flat = " ".join(text.split())
    for expected in ("Certificate of Completion", "env-4242", "Ines Ortiz", "ines@dealdesk.test",
                     "Dealdesk Demo GmbH", "Completed",
                     # shown in UTC, with the zone, whatever zone the input used
                     "2024-05-01 10:00:00 UTC", "2024-05-01 15:00:07 UTC"):
        assert expected in flat, expected
    for digest in (sha("msa"), sha("msa sealed"), sha("of"), sha("of sealed")):
        assert digest in text  # one unbroken line each
    assert "Order form.pdf" in flat and "12" in flat
    for expected in ("zoe@example.test", "lukasz@example.test", "archive@dealdesk.test",
                     "Signer", "Approver", "Copy (cc)", "Email one-time code", "Access code",
                     "Delivered", "Approved"):
        assert expected in flat, expected
    for i in range(6):
        assert f"Step {i + 1} done" in flat
        assert f"run/{i + 1}" in flat
    for ip in ("203.0.113.7", "198.51.100.23", "2001:db8::42"):
        assert ip in flat
    assert "Reason: <i>not</i> needed" in flat


def test_recipients_in_routing_order_and_events_as_recorded(small_pdf: bytes) -> None:
    flat = " ".join(pdf_text(small_pdf).split())
    recipients = flat[flat.index("Recipients Order"):flat.index("Events (6)")]
    positions = [recipients.index(n) for n in ("Zoë", "Łukasz", "Evil", "Legal archive")]
    assert positions == sorted(positions)
    events = flat[flat.index("Events (6)"):]
    steps = [events.index(f"Step {i} done") for i in range(1, 7)]
    assert steps == sorted(steps)


def test_markup_in_names_appears_literally(small_pdf: bytes) -> None:
    flat = " ".join(pdf_text(small_pdf).split())
    assert flat.count(EVIL) >= 4  # title, recipient, events
    assert "MSA - Evil & Co.pdf" in flat


def test_odd_names_render_in_an_embedded_font(small_pdf: bytes, tmp_path: Path) -> None:
    text = pdf_text(small_pdf)
    assert "Zoë Ångström" in text and "Łukasz Wąsik" in text
    fonts = pdf_tool("pdffonts", small_pdf, tmp_path)
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows and all(r[-5] == "yes" for r in rows)  # every font embedded
    assert any("DejaVuSans" in r[0] for r in rows)


def test_300_events_paginate_with_the_header_on_every_page(long_pdf: bytes,
                                                           tmp_path: Path) -> None:
    pages = page_count(long_pdf, tmp_path)
    assert pages > 5
    seen: list[int] = []
    for page in range(1, pages + 1):
        text = pdf_text(long_pdf, page, layout=True)
        assert "Certificate of Completion · Envelope env-4242" in text
        assert f"Page {page} of {pages}" in text
        numbers = [int(m) for m in re.findall(r"^\s*(\d+)\s+2024-05-01\s", text, re.M)]
        if numbers or page > 1:
            # the events table's header row, repeated on each page it spans
            assert re.search(r"#\s+When \(UTC\)\s+Who\s+What\s+Authentication\s+IP address",
                             text), f"page {page} lacks the table header"
        for n in numbers:  # no event is split: its user agent is on the same page
            assert f"run/{n}" in text
        seen += numbers
    assert seen == list(range(1, 301))
    assert "End of certificate for envelope env-4242." in pdf_text(long_pdf, pages)


def test_same_record_gives_the_same_bytes(small_pdf: bytes, tmp_path: Path) -> None:
    again = render_certificate(make_record())
    assert again == small_pdf
    info = pdf_tool("pdfinfo", small_pdf, tmp_path)
    assert re.search(r"CreationDate:\s+Wed May\s+1 15:00:07 2024 UTC", info)
    assert re.search(r"Encrypted:\s+no", info)
    other = dataclasses.replace(make_record(), envelope_id="env-4243")
    assert render_certificate(other) != small_pdf


def test_another_process_renders_the_same_bytes(small_pdf: bytes) -> None:
    # A retried activity may run on another worker: no hash seed or process state may leak in.
    script = ("import sys; from tests.test_certificate import make_record; "
              "from documents.certificate import render_certificate; "
              "sys.stdout.buffer.write(render_certificate(make_record()))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True,
                         cwd=Path(__file__).parent.parent, env={"PYTHONHASHSEED": "12345"})
    assert out.stdout == small_pdf


def test_falls_back_to_helvetica_without_dejavu(tmp_path: Path) -> None:
    pdf = render_certificate(make_record(), font_dir=tmp_path)
    assert "Ines Ortiz" in pdf_text(pdf)
    assert "Helvetica" in pdf_tool("pdffonts", pdf, tmp_path)


def test_oversized_strings_are_cut_instead_of_breaking_the_layout() -> None:
    big = "word " * 4000
    r = make_record(events=0)
    r = dataclasses.replace(
        r, title=big, sender_name=big, issuer=big,
        recipients=(*r.recipients, RecipientLine(big, big, "signer", 9, "none", "sent")),
        events=(EventLine(T0, big, big, big, big, "x" * 20_000, "none", big),))
    text = pdf_text(render_certificate(r))
    assert "word word" in text and "…" in text and "Events (1)" in text


@pytest.mark.parametrize(("change", "field"), [
    ({"created_at": dt.datetime(2024, 5, 1, 10)}, "created_at is a naive datetime"),
    ({"completed_at": T0 - dt.timedelta(seconds=1)}, "completed_at is before created_at"),
    ({"documents": ()}, "documents is empty"),
    ({"documents": (DocumentLine("a.pdf", 1, "abc", sha("x")),)},
     "documents[0].sha256_original must be 64 hex digits"),
    ({"documents": (DocumentLine("a.pdf", 0, sha("x"), sha("y")),)}, "documents[0].pages"),
    ({"recipients": (RecipientLine("A", "a@x.test", "witness", 1, "none",  # type: ignore[arg-type]
                                   "signed"),)}, "recipients[0].role is 'witness'"),
    ({"recipients": (RecipientLine("A", "a@x.test", "signer", 1, "sms",  # type: ignore[arg-type]
                                   "signed"),)}, "recipients[0].auth_method is 'sms'"),
    ({"events": (EventLine(dt.datetime(2024, 5, 1), "A", "Viewed"),)},
     "events[0].at is a naive datetime"),
])
def test_refuses_a_record_that_would_mislead(change: dict[str, object], field: str) -> None:
    with pytest.raises(CertificateError) as err:
        render_certificate(dataclasses.replace(make_record(), **change))  # type: ignore[arg-type]
    assert field in str(err.value)


def self_signed_seal() -> tuple[signers.SimpleSigner, asn1_x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dealdesk test seal")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    asn1_key = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    signer = signers.SimpleSigner(signing_cert=asn1_cert, signing_key=asn1_key,
                                  cert_registry=SimpleCertificateStore.from_certs([asn1_cert]))  # type: ignore[no-untyped-call]
    return signer, asn1_cert


def test_can_be_sealed_in_an_incremental_update(small_pdf: bytes) -> None:
    signer, cert = self_signed_seal()
    writer = IncrementalPdfFileWriter(io.BytesIO(small_pdf))
    sealed = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Seal"),
                              signer=signer).getvalue()
    assert sealed.startswith(small_pdf)  # the certificate itself is untouched
    reader = PdfFileReader(io.BytesIO(sealed))
    (sig,) = reader.embedded_signatures
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[cert]))
    assert status.intact and status.valid and status.trusted
    assert status.coverage is not None and status.coverage.name == "ENTIRE_FILE"
