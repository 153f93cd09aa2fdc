"""The demo's contract: a plain multi-page MSA with ``[[sign:…]]`` anchors where each party
signs (made with reportlab, so the demo needs no files)."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

CLAUSES = [
    "Definitions", "Services", "Fees and payment", "Term and renewal", "Service levels",
    "Confidentiality", "Data protection", "Intellectual property", "Warranties",
    "Limitation of liability", "Indemnities", "Termination", "Governing law", "General",
]


def contract_pdf(customer: str, anchors: list[str]) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    width, height = A4
    c.setTitle(f"Master services agreement — {customer}")
    for page, chunk in enumerate((CLAUSES[:5], CLAUSES[5:10], CLAUSES[10:]), start=1):
        c.setFont("Helvetica-Bold", 16)
        c.drawString(56, height - 72, f"Master services agreement — {customer}")
        c.setFont("Helvetica", 9)
        c.drawRightString(width - 56, 40, f"Page {page} of 3")
        y = height - 110
        for n, title in enumerate(chunk, start=CLAUSES.index(chunk[0]) + 1):
            c.setFont("Helvetica-Bold", 11)
            c.drawString(56, y, f"{n}. {title}")
            c.setFont("Helvetica", 10)
            for line in range(6):
                y -= 14
                c.drawString(72, y, f"{n}.{line + 1} The parties agree to the {title.lower()} "
                                    "terms set out in this clause.")
            y -= 24
        if page == 3:
            c.setFont("Helvetica-Bold", 11)
            c.drawString(56, 250, "Signatures")
            c.setFont("Helvetica", 9)
            for i, label in enumerate(anchors):
                x, y0 = 56 + (i % 2) * 260, 200 - (i // 2) * 90
                c.drawString(x, y0 + 40, f"[[sign:{label}]]")
        c.showPage()
    c.save()
    return buf.getvalue()
