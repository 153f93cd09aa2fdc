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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from documents.pdf_common import (
    ACCENT,
    BUILD_LOCK,
    DEJAVU_DIR,
    INK,
    MUTED,
    RULE,
    ZEBRA,
    Fonts,
    fit,
    grid,
    load_fonts,
    numbered_canvas,
    text,
)

RecipientRole = Literal["signer", "approver", "cc"]
AuthMethod = Literal["none", "access_code", "email_otp"]
RecipientStatus = Literal["sent", "delivered", "signed", "approved", "declined"]


_AUTH_LABELS: dict[str, str] = {
    "none": "None", "access_code": "Access code", "email_otp": "Email one-time code"}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


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
    with BUILD_LOCK:
        fonts = load_fonts(font_dir)
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
                  canvasmaker=numbered_canvas(fonts, record.completed_at))
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




def _styles(f: Fonts) -> dict[str, ParagraphStyle]:
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

def _utc(value: dt.datetime, sep: str = " ") -> str:
    return value.astimezone(dt.UTC).strftime(f"%Y-%m-%d{sep}%H:%M:%S UTC")


def _story(record: CompletionRecord, f: Fonts, width: float) -> list[Any]:
    st = _styles(f)
    return [
        Paragraph("Certificate of Completion", st["title"]),
        Paragraph(text(record.title, 1000), st["subtitle"]),
        Paragraph(
            "This certificate records the completion of the envelope below: its documents "
            "and their SHA-256 fingerprints, every recipient and every event in the order "
            f"recorded. All times are in UTC. It is sealed by {text(record.issuer)}; any "
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
        Paragraph(f"End of certificate for envelope {text(record.envelope_id)}.",
                  st["small"]),
    ]


def _summary(r: CompletionRecord, st: dict[str, ParagraphStyle], f: Fonts,
             width: float) -> Table:
    def kv(key: str, value: str) -> list[Paragraph]:
        return [Paragraph(key, st["key"]), Paragraph(value, st["value"])]

    pages = sum(d.pages for d in r.documents)
    sender = f"{text(r.sender_name)}<br/>{text(r.sender_email)}"
    rows = [
        kv("Envelope ID", text(r.envelope_id)) + kv("Status", "Completed"),
        kv("Sender", sender) + kv("Issued by", text(r.issuer)),
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


def _head(st: dict[str, ParagraphStyle], *labels: str) -> list[Paragraph]:
    return [Paragraph(label, st["head"]) for label in labels]


def _documents(r: CompletionRecord, st: dict[str, ParagraphStyle], f: Fonts,
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
        rows.append([Paragraph(text(d.name), st["cell"]),
                     Paragraph(str(d.pages), st["num"]),
                     Paragraph(fingerprints, st["cell"])])
    return grid(rows, [width - pages_w - hash_w, pages_w, hash_w], f.regular)


def _recipients(r: CompletionRecord, st: dict[str, ParagraphStyle], f: Fonts,
                width: float) -> Table:
    rows: list[list[Any]] = [_head(st, "Order", "Recipient", "Role", "Authentication",
                                   "Status", "Time (UTC)")]
    ordered = sorted(enumerate(r.recipients), key=lambda p: (p[1].routing_order, p[0]))
    for _, rec in ordered:
        rows.append([
            Paragraph(str(rec.routing_order), st["num"]),
            Paragraph(f"{text(rec.name)}<br/>"
                      f'<font size="6.5" color="#5b6675">{text(rec.email)}</font>',
                      st["cell"]),
            Paragraph(rec.role.capitalize() if rec.role != "cc" else "Copy (cc)", st["cell"]),
            Paragraph(_AUTH_LABELS[rec.auth_method], st["cell"]),
            Paragraph(rec.status.capitalize(), st["cell"]),
            Paragraph(_utc(rec.status_at, "<br/>") if rec.status_at else "—", st["cell"]),
        ])
    fixed = [13 * mm, 20 * mm, 30 * mm, 20 * mm, 24 * mm]
    widths = [fixed[0], width - sum(fixed), *fixed[1:]]
    return grid(rows, widths, f.regular)


def _events(r: CompletionRecord, st: dict[str, ParagraphStyle], f: Fonts,
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
        who = text(e.actor)
        if e.actor_email:
            who += f'<br/><font size="6.5" color="#5b6675">{text(e.actor_email)}</font>'
        what = text(e.action)
        if e.detail:
            what += f'<br/><font size="6.5" color="#5b6675">{text(e.detail)}</font>'
        cell: list[Any] = [columns([
            Paragraph(str(n), st["num"]),
            Paragraph(_utc(e.at, "<br/>"), st["cell"]),
            Paragraph(who, st["cell"]),
            Paragraph(what, st["cell"]),
            Paragraph(_AUTH_LABELS[e.auth_method] if e.auth_method else "—", st["cell"]),
            Paragraph(text(e.ip_address) or "—", st["cell"]),
        ])]
        if e.user_agent:
            cell.append(Paragraph(f"User agent: {text(e.user_agent, 600)}", st["agent"]))
        rows.append([cell])
    return grid(rows, [width], f.regular, padding=0)


# --- page furniture -------------------------------------------------------------------------

def _page_decorator(record: CompletionRecord, f: Fonts) -> Callable[[Canvas, Any], None]:
    def decorate(canvas: Canvas, doc: Any) -> None:
        w, h = doc.pagesize
        left, right = doc.leftMargin, w - doc.rightMargin
        top = h - 12 * mm
        canvas.saveState()
        canvas.setFillColor(ACCENT)
        canvas.setFont(f.bold, 9)
        canvas.drawString(left, top, fit(record.issuer, f.bold, 9, (right - left) / 2))
        canvas.setFillColor(MUTED)
        canvas.setFont(f.regular, 8)
        label = f"Certificate of Completion · Envelope {record.envelope_id}"
        canvas.drawRightString(right, top, fit(label, f.regular, 8, (right - left) / 2))
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(left, top - 3 * mm, right, top - 3 * mm)
        canvas.line(left, 12 * mm, right, 12 * mm)
        canvas.drawString(left, 8 * mm, f"Completed {_utc(record.completed_at)}")
        canvas.restoreState()

    return decorate
