"""Test documents made on the fly (reportlab) and the independent validators (pyHanko, pdfsig)."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import crl as asn1_crl
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext
from reportlab.pdfgen import canvas

from documents.pki import Pki


def contract_pdf(pages: int = 20, anchors: dict[int, list[str]] | None = None) -> bytes:
    """A plain contract of ``pages`` pages; ``anchors`` puts ``[[sign:LABEL]]`` texts on pages."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pageCompression=0)  # plain text streams: tests edit them
    for i in range(pages):
        c.setFont("Helvetica-Bold", 14)
        c.drawString(72, 760, f"Master services agreement, page {i + 1} of {pages}")
        c.setFont("Helvetica", 10)
        for line in range(40):
            c.drawString(72, 730 - 14 * line,
                         f"{i + 1}.{line + 1} The parties agree to clause {line + 1} as written.")
        for n, label in enumerate((anchors or {}).get(i, [])):
            c.drawString(72 + 250 * n, 120, f"[[sign:{label}]]")
        c.showPage()
    c.save()
    return buf.getvalue()


@dataclass(frozen=True)
class SigVerdict:
    field: str
    timestamp: bool
    intact: bool
    valid: bool
    trusted: bool
    docmdp_ok: bool | None
    modification: str | None


def pyhanko_verdicts(pdf: bytes, pki: Pki) -> list[SigVerdict]:
    async def run() -> list[SigVerdict]:
        reader = PdfFileReader(io.BytesIO(pdf))
        out = []
        for sig in reader.embedded_signatures:
            vc = ValidationContext(
                trust_roots=pki.trust_roots(), allow_fetching=False,
                crls=[asn1_crl.CertificateList.load(pki.crl(w)) for w in ("issuing", "root")])
            if sig.sig_object_type == "/DocTimeStamp":
                ts = await async_validate_pdf_timestamp(sig, validation_context=vc)
                out.append(SigVerdict(sig.field_name, True, ts.intact, ts.valid, ts.trusted,
                                      None, None))
            else:
                st = await async_validate_pdf_signature(sig, vc)
                out.append(SigVerdict(
                    sig.field_name, False, st.intact, st.valid, st.trusted, st.docmdp_ok,
                    st.modification_level.name if st.modification_level else None))
        return out

    return asyncio.run(run())


def pdfsig_report(pdf: bytes, pki: Pki) -> dict[str, tuple[str, str]]:
    """poppler's verdict per signature field: (signature validation, certificate validation),
    trusting the PKI's root through a throw-away NSS database."""
    with tempfile.TemporaryDirectory() as tmp:
        nss, doc = Path(tmp, "nss"), Path(tmp, "doc.pdf")
        nss.mkdir()
        doc.write_bytes(pdf)
        subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "ca", "-t", "CT,C,C",
                        "-i", str(pki.directory / "root.pem")], check=True)
        res = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(doc)],
                             capture_output=True, text=True, timeout=60)
    report: dict[str, tuple[str, str]] = {}
    for block in re.split(r"^Signature #\d+:", res.stdout, flags=re.M)[1:]:
        name = re.search(r"Signature Field Name: (.+)", block)
        sig = re.search(r"Signature Validation: (.+)", block)
        cert = re.search(r"Certificate Validation: (.+)", block)
        if name:
            report[name.group(1).strip()] = (sig.group(1).strip() if sig else "",
                                             cert.group(1).strip() if cert else "")
    return report
