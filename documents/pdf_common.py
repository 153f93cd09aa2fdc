"""What the PDFs dealdesk renders with reportlab share (certificate of completion, invoices):
embedded DejaVu fonts, colours, safe paragraph text, data tables that span pages, and a
canvas that numbers pages "Page n of N".

reportlab's font registry and per-document font state are process-wide: build one document
at a time, holding :data:`BUILD_LOCK`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import LongTable, Table, TableStyle

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
BUILD_LOCK = threading.Lock()
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Fonts:
    regular: str
    bold: str
    mono: str


def load_fonts(font_dir: Path | None) -> Fonts:
    files = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf",
             "mono": "DejaVuSansMono.ttf"}
    if font_dir is None or not all((font_dir / f).is_file() for f in files.values()):
        return Fonts("Helvetica", "Helvetica-Bold", "Courier")
    registered = set(pdfmetrics.getRegisteredFontNames())
    names = {}
    for key, file in files.items():
        name = f"Dealdesk-{Path(file).stem}"
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, str(font_dir / file)))
        names[key] = name
    # <b> inside a paragraph must find the bold face of the embedded family.
    pdfmetrics.registerFontFamily(names["regular"], normal=names["regular"],
                                  bold=names["bold"], italic=names["regular"],
                                  boldItalic=names["bold"])
    return Fonts(**names)


INK = colors.HexColor("#1d2733")
MUTED = colors.HexColor("#5b6675")
ACCENT = colors.HexColor("#1f4e79")
RULE = colors.HexColor("#c9d1db")
ZEBRA = colors.HexColor("#f3f6f9")


def text(value: str, limit: int = 300) -> str:
    """A user-supplied string made safe for paragraph markup: escaped, one line, and cut at
    ``limit`` characters so that no table row can outgrow a page (reportlab would fail)."""
    value = CONTROL.sub(" ", value)
    return escape(value if len(value) <= limit else value[:limit - 1] + "…")


def grid(rows: list[list[Any]], widths: list[float], font: str, *,
          padding: float = 4) -> Table:
    """A data table whose header row repeats on every page it spans; rows never split.

    Style commands cover whole ranges (no per-row commands, no spans): reportlab re-applies
    them at every page break, so per-row ones would make long tables quadratic.
    """
    table = LongTable(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTNAME", (0, 0), (-1, -1), font),  # for the empty cells; the rest are paragraphs
        ("BACKGROUND", (0, 0), (-1, 0), ACCENT),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, ZEBRA]),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("BOX", (0, 0), (-1, -1), 0.5, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), padding),
        ("RIGHTPADDING", (0, 0), (-1, -1), padding),
        ("TOPPADDING", (0, 0), (-1, -1), 3 if padding else 0),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3 if padding else 0),
    ]))
    return table


def fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` (one line of page furniture)."""
    whole = len(text) <= 200
    text = CONTROL.sub(" ", text[:200])
    if whole and pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def numbered_canvas(f: Fonts, completed_at: dt.datetime) -> type[Canvas]:
    """A canvas that numbers pages "Page n of N" and dates the PDF at completion time."""
    stamp = completed_at.astimezone(dt.UTC).strftime("D:%Y%m%d%H%M%S+00'00'")

    class NumberedCanvas(Canvas):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.setDateFormatter(lambda *_: stamp)  # CreationDate and ModDate
            self._saved_pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            # Hold each page until the total is known.
            self._saved_pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._saved_pages)
            for number, state in enumerate(self._saved_pages, start=1):
                self.__dict__.update(state)
                w, _ = self._pagesize
                self.saveState()
                self.setFont(f.regular, 8)
                self.setFillColor(MUTED)
                self.drawRightString(w - 16 * mm, 8 * mm, f"Page {number} of {total}")
                self.restoreState()
                super().showPage()
            super().save()

    return NumberedCanvas
