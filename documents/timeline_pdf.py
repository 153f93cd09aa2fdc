"""A deal's timeline as a readable PDF for the evidence bundle: one table, oldest first.

``render_timeline(title, subtitle, rows)`` lays out ``(n, when, who, what, of)`` rows on
landscape A4 pages with the header repeated; text is escaped for reportlab's markup. Blocking:
call from a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

HEADER = ("#", "When (UTC)", "Who", "What", "Of")
WIDTHS = (12 * mm, 42 * mm, 62 * mm, 110 * mm, 45 * mm)


def render_timeline(title: str, subtitle: str, rows: Sequence[Sequence[str]]) -> bytes:
    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=7.5, leading=9)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), title=title, author="dealdesk",
                            leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                            bottomMargin=12 * mm, invariant=True)
    table = LongTable([[Paragraph(f"<b>{h}</b>", cell) for h in HEADER],
                       *[[Paragraph(escape(str(v)), cell) for v in row] for row in rows]],
                      colWidths=WIDTHS, repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d5dd")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2f4f7")),
        ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    doc.build([Paragraph(escape(title), styles["Title"]),
               Paragraph(escape(subtitle), styles["BodyText"]), Spacer(1, 4 * mm), table])
    return out.getvalue()
