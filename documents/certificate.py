"""Certificate of completion: the one-file summary of a fully signed envelope.

``render_certificate(record)`` turns a :class:`CompletionRecord` into unsigned PDF bytes: the
envelope, its documents with their SHA-256 before signing and after sealing, every recipient,
and every event in the order recorded. The organisation's seal is added afterwards, by other
code, in an incremental update; so the output is a classic PDF (cross-reference table, no
encryption, no object streams).

The same record always gives the same bytes: reportlab runs in invariant mode and the PDF's
creation date is the envelope's completion time, so a retried activity rewrites nothing.
Every user-supplied string is escaped before it reaches reportlab's paragraph markup.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepTogether,
    LongTable,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

RecipientRole = Literal["signer", "approver", "cc"]
AuthMethod = Literal["none", "access_code", "email_otp"]
RecipientStatus = Literal["sent", "delivered", "signed", "approved", "declined"]

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")

_AUTH_LABELS: dict[str, str] = {
    "none": "None", "access_code": "Access code", "email_otp": "Email one-time code"}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# reportlab's font registry and per-document font state are process-wide: one build at a time.
_BUILD_LOCK = threading.Lock()


class CertificateError(ValueError):
    """The record cannot make a truthful certificate; the message names the field and fix."""


@dataclass(frozen=True)
class DocumentLine:
    name: str
    """File name shown to recipients, e.g. ``"MSA - Acme.pdf"``."""
    pages: int
    """Page count of the signed document (at least 1)."""
    sha256_original: str
    """SHA-256 (64 hex digits) of the PDF as sent for signature, before any signature."""
    sha256_sealed: str
    """SHA-256 (64 hex digits) of the final PDF, after the last signature and the seal."""


@dataclass(frozen=True)
class RecipientLine:
    name: str
    """Full name as the sender entered it; any Unicode."""
    email: str
    """Address the signing link or copy was sent to."""
    role: RecipientRole
    """``signer`` signs, ``approver`` approves without a signature, ``cc`` gets a copy."""
    routing_order: int
    """Turn in the routing (1 = first); recipients sharing a number act in parallel."""
    auth_method: AuthMethod
    """How the recipient had to prove who they are: ``none``, ``access_code``, ``email_otp``."""
    status: RecipientStatus
    """Final state: ``signed``, ``approved``, ``delivered`` (opened), ``sent`` or ``declined``."""
    status_at: dt.datetime | None = None
    """When the recipient reached ``status`` (timezone-aware); None if never recorded."""


@dataclass(frozen=True)
class EventLine:
    at: dt.datetime
    """When it happened (timezone-aware); printed in UTC."""
    actor: str
    """Who acted: a recipient's or the sender's name, or ``"System"``."""
    action: str
    """What happened, in words: ``"Signed"``, ``"Viewed document"``, ``"Sealed"``."""
    actor_email: str = ""
    """The actor's email address, if they have one."""
    ip_address: str = ""
    """Client IP address as the web tier saw it (IPv4 or IPv6); empty for system events."""
    user_agent: str = ""
    """Client ``User-Agent`` header; empty for system events."""
    auth_method: AuthMethod | None = None
    """Authentication the actor passed for this event; None when none applies."""
    detail: str = ""
    """Optional extra words, e.g. a decline reason or a certificate serial."""


@dataclass(frozen=True)
class CompletionRecord:
    envelope_id: str
    """Business key of the envelope, e.g. ``"env-42"``."""
    title: str
    """Envelope subject as recipients saw it."""
    sender_name: str
    """Name of the person who sent the envelope."""
    sender_email: str
    """Their email address."""
    created_at: dt.datetime
    """When the envelope was sent (timezone-aware)."""
    completed_at: dt.datetime
    """When the last recipient finished (timezone-aware); also the PDF's creation date."""
    documents: tuple[DocumentLine, ...]
    """The signed documents, in envelope order (at least one)."""
    recipients: tuple[RecipientLine, ...]
    """Every recipient (at least one); printed by routing order, then as given."""
    events: tuple[EventLine, ...]
    """The full event list in the order recorded by the audit trail; printed as given."""
    issuer: str = "dealdesk"
    """Organisation that issues and seals the certificate; printed in every page header."""


def render_certificate(record: CompletionRecord, *,
                       font_dir: Path | None = DEJAVU_DIR) -> bytes:
    """The certificate as unsigned PDF bytes; identical records give identical bytes.

    ``font_dir`` holds DejaVuSans*.ttf (embedded, so any Latin, Greek or Cyrillic name
    renders); without them, or with ``None``, the PDF falls back to Helvetica.
    """
    _check(record)
    with _BUILD_LOCK:
        fonts = _fonts(font_dir)
        buf = io.BytesIO()
        doc = BaseDocTemplate(
            buf, pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=24 * mm,
            bottomMargin=18 * mm, initialFontName=fonts.regular, invariant=1,
            pageCompression=1, lang="en",
            title=f"Certificate of completion: {record.title}",
            author=record.issuer, subject=f"Envelope {record.envelope_id}",
            creator="dealdesk certificate of completion", producer="dealdesk",
            keywords=[record.envelope_id])
        frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        doc.addPageTemplates([PageTemplate(id="page", frames=[frame],
                                           onPage=_page_decorator(record, fonts))])
        doc.build(_story(record, fonts, doc.width),
                  canvasmaker=_canvas_class(fonts, record.completed_at))
        return buf.getvalue()


# --- input checks ---------------------------------------------------------------------------

def _check(record: CompletionRecord) -> None:
    if not record.envelope_id.strip():
        raise CertificateError("envelope_id is empty: pass the envelope's business key")
    _aware("created_at", record.created_at)
    _aware("completed_at", record.completed_at)
    if record.completed_at < record.created_at:
        raise CertificateError("completed_at is before created_at: pass the completion time")
    if not record.documents:
        raise CertificateError("documents is empty: list the signed document(s)")
    if not record.recipients:
        raise CertificateError("recipients is empty: list every recipient")
    for i, d in enumerate(record.documents):
        if d.pages < 1:
            raise CertificateError(f"documents[{i}].pages must be at least 1, got {d.pages}")
        for field in ("sha256_original", "sha256_sealed"):
            if not _HEX64.fullmatch(getattr(d, field)):
                raise CertificateError(f"documents[{i}].{field} must be 64 hex digits")
    for i, r in enumerate(record.recipients):
        _member(f"recipients[{i}].role", r.role, RecipientRole)
        _member(f"recipients[{i}].auth_method", r.auth_method, AuthMethod)
        _member(f"recipients[{i}].status", r.status, RecipientStatus)
        if r.routing_order < 1:
            raise CertificateError(f"recipients[{i}].routing_order must be 1 or more")
        if r.status_at is not None:
            _aware(f"recipients[{i}].status_at", r.status_at)
    for i, e in enumerate(record.events):
        _aware(f"events[{i}].at", e.at)
        if e.auth_method is not None:
            _member(f"events[{i}].auth_method", e.auth_method, AuthMethod)


def _aware(field: str, value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CertificateError(f"{field} is a naive datetime: pass a timezone-aware one")


def _member(field: str, value: str, choices: Any) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise CertificateError(f"{field} is {value!r}: use one of {', '.join(allowed)}")


# --- fonts and styles -----------------------------------------------------------------------

@dataclass(frozen=True)
class _Fonts:
    regular: str
    bold: str
    mono: str


def _fonts(font_dir: Path | None) -> _Fonts:
    files = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf",
             "mono": "DejaVuSansMono.ttf"}
    if font_dir is None or not all((font_dir / f).is_file() for f in files.values()):
        return _Fonts("Helvetica", "Helvetica-Bold", "Courier")
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
    return _Fonts(**names)


INK = colors.HexColor("#1d2733")
MUTED = colors.HexColor("#5b6675")
ACCENT = colors.HexColor("#1f4e79")
RULE = colors.HexColor("#c9d1db")
ZEBRA = colors.HexColor("#f3f6f9")


def _styles(f: _Fonts) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=f.regular, fontSize=9, leading=12, textColor=INK)
    return {
        "title": ParagraphStyle("title", base, fontName=f.bold, fontSize=18, leading=22,
                                textColor=ACCENT),
        "subtitle": ParagraphStyle("subtitle", base, fontSize=11, leading=14, spaceBefore=2),
        "intro": ParagraphStyle("intro", base, fontSize=8.5, leading=11.5, textColor=MUTED,
                                spaceBefore=6),
        "h2": ParagraphStyle("h2", base, fontName=f.bold, fontSize=11, leading=14,
                             textColor=ACCENT, spaceBefore=14, spaceAfter=5),
        "key": ParagraphStyle("key", base, fontName=f.bold, fontSize=8, leading=10.5,
                              textColor=MUTED),
        "value": ParagraphStyle("value", base, fontSize=8.5, leading=11),
        "cell": ParagraphStyle("cell", base, fontSize=7.5, leading=9.5),
        "small": ParagraphStyle("small", base, fontSize=6.5, leading=8.5, textColor=MUTED),
        "agent": ParagraphStyle("agent", base, fontSize=6.5, leading=8.5, textColor=MUTED,
                                leftIndent=9 * mm + 4, rightIndent=4, spaceAfter=3),
        "head": ParagraphStyle("head", base, fontName=f.bold, fontSize=7.5, leading=9.5,
                               textColor=colors.white),
        "num": ParagraphStyle("num", base, fontSize=7.5, leading=9.5, alignment=TA_RIGHT),
    }


# --- story ----------------------------------------------------------------------------------

def _text(value: str, limit: int = 300) -> str:
    """A user-supplied string made safe for paragraph markup: escaped, one line, and cut at
    ``limit`` characters so that no table row can outgrow a page (reportlab would fail)."""
    value = _CONTROL.sub(" ", value)
    return escape(value if len(value) <= limit else value[:limit - 1] + "…")


def _utc(value: dt.datetime, sep: str = " ") -> str:
    return value.astimezone(dt.UTC).strftime(f"%Y-%m-%d{sep}%H:%M:%S UTC")


def _story(record: CompletionRecord, f: _Fonts, width: float) -> list[Any]:
    st = _styles(f)
    return [
        Paragraph("Certificate of Completion", st["title"]),
        Paragraph(_text(record.title, 1000), st["subtitle"]),
        Paragraph(
            "This certificate records the completion of the envelope below: its documents "
            "and their SHA-256 fingerprints, every recipient and every event in the order "
            f"recorded. All times are in UTC. It is sealed by {_text(record.issuer)}; any "
            "change to this file invalidates the seal.", st["intro"]),
        Paragraph("Envelope", st["h2"]),
        _summary(record, st, f, width),
        KeepTogether([Paragraph("Documents", st["h2"]), _documents(record, st, f, width)]),
        CondPageBreak(35 * mm),  # no heading alone at the foot of a page
        Paragraph("Recipients", st["h2"]),
        _recipients(record, st, f, width),
        CondPageBreak(35 * mm),
        Paragraph(f"Events ({len(record.events)})", st["h2"]),
        _events(record, st, f, width),
        Spacer(1, 8),
        Paragraph(f"End of certificate for envelope {_text(record.envelope_id)}.",
                  st["small"]),
    ]


def _summary(r: CompletionRecord, st: dict[str, ParagraphStyle], f: _Fonts,
             width: float) -> Table:
    def kv(key: str, value: str) -> list[Paragraph]:
        return [Paragraph(key, st["key"]), Paragraph(value, st["value"])]

    pages = sum(d.pages for d in r.documents)
    sender = f"{_text(r.sender_name)}<br/>{_text(r.sender_email)}"
    rows = [
        kv("Envelope ID", _text(r.envelope_id)) + kv("Status", "Completed"),
        kv("Sender", sender) + kv("Issued by", _text(r.issuer)),
        kv("Created", _utc(r.created_at)) + kv("Completed", _utc(r.completed_at)),
        kv("Documents", str(len(r.documents))) + kv("Recipients", str(len(r.recipients))),
        kv("Pages", str(pages)) + kv("Events", str(len(r.events))),
    ]
    key_w = 30 * mm
    table = Table(rows, colWidths=[key_w, width / 2 - key_w] * 2)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTNAME", (0, 0), (-1, -1), f.regular),
        ("BOX", (0, 0), (-1, -1), 0.5, RULE),
        ("LINEBELOW", (0, 0), (-1, -2), 0.25, RULE),
        ("BACKGROUND", (0, 0), (0, -1), ZEBRA),
        ("BACKGROUND", (2, 0), (2, -1), ZEBRA),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    return table


def _grid(rows: list[list[Any]], widths: list[float], font: str, *,
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


def _head(st: dict[str, ParagraphStyle], *labels: str) -> list[Paragraph]:
    return [Paragraph(label, st["head"]) for label in labels]


def _documents(r: CompletionRecord, st: dict[str, ParagraphStyle], f: _Fonts,
               width: float) -> Table:
    # The hash column is as wide as a hash, so no fingerprint is ever broken across lines.
    hash_w = pdfmetrics.stringWidth("0" * 64, f.mono, 7) + 10
    pages_w = 14 * mm
    rows: list[list[Any]] = [_head(st, "Document", "Pages", "SHA-256 fingerprints")]
    for d in r.documents:
        fingerprints = (
            f'<font size="6.5" color="#5b6675">Before signing</font><br/>'
            f'<font name="{f.mono}" size="7">{d.sha256_original.lower()}</font><br/>'
            f'<font size="6.5" color="#5b6675">After sealing</font><br/>'
            f'<font name="{f.mono}" size="7">{d.sha256_sealed.lower()}</font>')
        rows.append([Paragraph(_text(d.name), st["cell"]),
                     Paragraph(str(d.pages), st["num"]),
                     Paragraph(fingerprints, st["cell"])])
    return _grid(rows, [width - pages_w - hash_w, pages_w, hash_w], f.regular)


def _recipients(r: CompletionRecord, st: dict[str, ParagraphStyle], f: _Fonts,
                width: float) -> Table:
    rows: list[list[Any]] = [_head(st, "Order", "Recipient", "Role", "Authentication",
                                   "Status", "Time (UTC)")]
    ordered = sorted(enumerate(r.recipients), key=lambda p: (p[1].routing_order, p[0]))
    for _, rec in ordered:
        rows.append([
            Paragraph(str(rec.routing_order), st["num"]),
            Paragraph(f"{_text(rec.name)}<br/>"
                      f'<font size="6.5" color="#5b6675">{_text(rec.email)}</font>',
                      st["cell"]),
            Paragraph(rec.role.capitalize() if rec.role != "cc" else "Copy (cc)", st["cell"]),
            Paragraph(_AUTH_LABELS[rec.auth_method], st["cell"]),
            Paragraph(rec.status.capitalize(), st["cell"]),
            Paragraph(_utc(rec.status_at, "<br/>") if rec.status_at else "—", st["cell"]),
        ])
    fixed = [13 * mm, 20 * mm, 30 * mm, 20 * mm, 24 * mm]
    widths = [fixed[0], width - sum(fixed), *fixed[1:]]
    return _grid(rows, widths, f.regular)


def _events(r: CompletionRecord, st: dict[str, ParagraphStyle], f: _Fonts,
            width: float) -> Table:
    # One row per event, so an event never splits across pages: the row's one cell holds
    # the facts (an inner table with the columns) and, below them, the long user agent.
    fixed = [9 * mm, 22 * mm, 40 * mm, 36 * mm, 27 * mm]
    widths = [*fixed, width - sum(fixed)]
    inner = TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTNAME", (0, 0), (-1, -1), f.regular),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ])

    def columns(cells: list[Paragraph]) -> Table:
        return Table([cells], colWidths=widths, style=inner)

    rows: list[list[Any]] = [[columns(_head(st, "#", "When (UTC)", "Who", "What",
                                             "Authentication", "IP address"))]]
    for n, e in enumerate(r.events, start=1):
        who = _text(e.actor)
        if e.actor_email:
            who += f'<br/><font size="6.5" color="#5b6675">{_text(e.actor_email)}</font>'
        what = _text(e.action)
        if e.detail:
            what += f'<br/><font size="6.5" color="#5b6675">{_text(e.detail)}</font>'
        cell: list[Any] = [columns([
            Paragraph(str(n), st["num"]),
            Paragraph(_utc(e.at, "<br/>"), st["cell"]),
            Paragraph(who, st["cell"]),
            Paragraph(what, st["cell"]),
            Paragraph(_AUTH_LABELS[e.auth_method] if e.auth_method else "—", st["cell"]),
            Paragraph(_text(e.ip_address) or "—", st["cell"]),
        ])]
        if e.user_agent:
            cell.append(Paragraph(f"User agent: {_text(e.user_agent, 600)}", st["agent"]))
        rows.append([cell])
    return _grid(rows, [width], f.regular, padding=0)


# --- page furniture -------------------------------------------------------------------------

def _page_decorator(record: CompletionRecord, f: _Fonts) -> Callable[[Canvas, Any], None]:
    def decorate(canvas: Canvas, doc: Any) -> None:
        w, h = doc.pagesize
        left, right = doc.leftMargin, w - doc.rightMargin
        top = h - 12 * mm
        canvas.saveState()
        canvas.setFillColor(ACCENT)
        canvas.setFont(f.bold, 9)
        canvas.drawString(left, top, _fit(record.issuer, f.bold, 9, (right - left) / 2))
        canvas.setFillColor(MUTED)
        canvas.setFont(f.regular, 8)
        label = f"Certificate of Completion · Envelope {record.envelope_id}"
        canvas.drawRightString(right, top, _fit(label, f.regular, 8, (right - left) / 2))
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(left, top - 3 * mm, right, top - 3 * mm)
        canvas.line(left, 12 * mm, right, 12 * mm)
        canvas.drawString(left, 8 * mm, f"Completed {_utc(record.completed_at)}")
        canvas.restoreState()

    return decorate


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` (one line of page furniture)."""
    whole = len(text) <= 200
    text = _CONTROL.sub(" ", text[:200])
    if whole and pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _canvas_class(f: _Fonts, completed_at: dt.datetime) -> type[Canvas]:
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
