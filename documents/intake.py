"""Intake of uploaded PDFs for signing envelopes, and anchor text for placing signature fields.

:func:`accept_pdf` either returns an :class:`AcceptedPdf` (the bytes to store and what the
envelope planner needs: pages, existing signatures, empty signature fields) or raises
:class:`DocumentRefused` with a sentence a person can act on and a stable ``code``
(:class:`RefusalCode`). No other exception escapes it: pyHanko reads untrusted input, and
anything it can't read is refused as ``malformed``.

Decisions (see docs for the envelope flow):

- **Unsigned documents are rewritten once** by pyHanko (``copy_into_new_writer``): one revision,
  a classic xref table, no encryption, only objects reachable from the catalog. Uploads come
  with hybrid-reference xrefs (Word), off-by-one ``startxref`` values, linearisation and stale
  incremental updates; pyHanko refuses to validate signatures in hybrid-reference files in
  strict mode, and other validators are less tolerant than its non-strict reader. After the
  rewrite every stored document has a structure pyHanko itself wrote, so later incremental
  signatures validate strictly. A rewrite also drops ``/Perms`` (usage-rights signatures it
  would break anyway). The upload's own hash stays in ``original_sha256``.
- **Signed documents are stored byte for byte** (a rewrite would break their signatures); they
  must open in pyHanko's strict mode without hybrid xrefs, or they are refused.
- **Their signatures must hold, whoever made them.** Every signature and document timestamp
  is checked for integrity with ``documents.verify`` (``check_integrity``): the signed byte
  ranges' digest, the CMS signature, any signature timestamp token, and pyHanko's diff
  analysis of every later revision (changes its signatures or certification don't allow). The
  signer's certificate need not be trusted (a customer's CA is unknown to us), but one broken
  signature refuses the upload (``signature_invalid``) naming the field, the signer and what is
  wrong: we would otherwise seal a document that fails ``dealdesk verify``. pyHanko bounds
  neither time nor memory, so the check runs in a child process with limits
  (``verify.INTEGRITY_LIMITS``); a file it can't check within them is refused as
  ``signature_unverifiable``.
- **Encryption**: a password or certificate (public-key) is refused; we take no passwords at
  upload. A file that opens with an *empty* user password (e.g. AES with only an owner password)
  is decrypted and rewritten without encryption, unless it is already signed (refused: removing
  encryption breaks the signatures) or its permissions, granted to the user password only,
  forbid both form filling and annotating (refused: signing is a form-filling change).
- **XFA**: dynamic XFA (``/NeedsRendering`` or no AcroForm fields) is refused: its pages are
  only a placeholder ("requires Adobe Reader 8"), so a signature would cover the placeholder,
  not the form. Static XFA (real pages and AcroForm fields) has its ``/XFA`` entry stripped in
  the rewrite, with a note; a signed document with XFA is refused.
- **Certification**: DocMDP P=1 ("no changes allowed") is refused; P=2/3 is accepted and
  reported in ``certification`` (only existing empty fields may then be signed: a new field
  after certification is flagged by validators).
"""

from __future__ import annotations

import hashlib
import html
import io
import logging
import pickle
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.crypt import AuthStatus, PubKeySecurityHandler, StandardSecurityHandler
from pyhanko.pdf_utils.crypt.permissions import StandardPermissions
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfDecodeLimitError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign.fields import enumerate_sig_fields

from documents import sandbox
from documents.verify import INTEGRITY_LIMITS, SignatureKind, UnreadablePdf, check_integrity

logger = logging.getLogger(__name__)

ANCHOR_PATTERN = r"\[\[sign:([a-z0-9_-]+)\]\]"
# The program that finds anchors (poppler-utils); dealdesk/tools.py registers it.
PDFTOTEXT = "pdftotext"
_SNIFF = 1024  # the PDF header must be at byte 0; we look this far to say what a file is


class RefusalCode(StrEnum):
    """Why an upload was refused: stable strings for the API, the UI and the audit log."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_PDF = "not_pdf"
    MALFORMED = "malformed"
    ENCRYPTED = "encrypted"
    SIGNING_NOT_PERMITTED = "signing_not_permitted"
    CERTIFIED_NO_CHANGES = "certified_no_changes"
    XFA_FORM = "xfa_form"
    SIGNATURE_INVALID = "signature_invalid"
    """An existing signature doesn't match the document (changed after signing, a broken
    signature, later changes its signatures don't allow)."""
    SIGNATURE_UNVERIFIABLE = "signature_unverifiable"
    """The existing signatures couldn't be checked within the time and memory limits."""


class DocumentRefused(Exception):
    """The upload can't become an envelope document; ``reason`` names the problem and the fix."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __reduce__(self) -> tuple[type[DocumentRefused], tuple[str, str]]:
        return type(self), (self.reason, self.code)  # crosses the sandbox's process boundary


class AnchorSearchFailed(Exception):
    """``pdftotext`` is missing, failed on the document or took too long."""


@dataclass(frozen=True)
class PageGeometry:
    """One page's visible area in PDF user space (points, origin bottom-left, unrotated)."""

    x0: float
    """Left edge of the crop box (clipped to the media box)."""
    y0: float
    """Bottom edge of the crop box."""
    x1: float
    """Right edge of the crop box."""
    y1: float
    """Top edge of the crop box."""
    rotation: int
    """``/Rotate``: 0, 90, 180 or 270 degrees clockwise when displayed."""
    media_box: tuple[float, float, float, float]
    """The media box (x0, y0, x1, y1): the frame of pdftotext's coordinates."""

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class AcceptedPdf:
    """A PDF that can be signed incrementally, and what the envelope planner needs from it."""

    data: bytes
    """The bytes to store: the upload itself, or its one-time rewrite (see ``rewritten``)."""
    sha256: str
    """Hex SHA-256 of ``data``."""
    original_sha256: str
    """Hex SHA-256 of the upload as received."""
    rewritten: bool
    """True when ``data`` is pyHanko's rewrite of an unsigned upload, not the upload itself."""
    page_count: int
    pages: tuple[PageGeometry, ...]
    """Per page (index 0 first): where a signature field can go."""
    signature_count: int
    """Signatures (and document timestamps) already in the document."""
    empty_signature_fields: tuple[str, ...]
    """Fully qualified names of existing unsigned signature fields."""
    certification: int | None
    """DocMDP level of a certification signature (2 or 3), or None if not certified."""
    notes: tuple[str, ...] = ()
    """Sentences for the uploader about what intake changed (decrypted, XFA stripped)."""


@dataclass(frozen=True)
class Anchor:
    """Anchor text such as ``[[sign:buyer]]`` on a page, in PDF user space points."""

    page_index: int
    label: str
    x0: float
    y0: float
    x1: float
    y1: float


def accept_pdf(data: bytes, *, filename: str, max_bytes: int,
               signature_limits: sandbox.Limits = INTEGRITY_LIMITS) -> AcceptedPdf:
    """Check an uploaded PDF and return what to store, or raise :class:`DocumentRefused`.

    Blocking (pyHanko; for a signed upload, a child process checking its signatures within
    ``signature_limits``): call it on a worker thread.
    """
    name = _display_name(filename)
    _check_envelope(data, name, max_bytes)
    try:
        return _accept(data, name, signature_limits)
    except DocumentRefused:
        raise
    except PdfDecodeLimitError as e:
        logger.info("refused %s: %s", name, e)
        raise DocumentRefused(
            f"{name} contains compressed data that expands beyond safe limits; "
            "save it again as a regular PDF (e.g. print to PDF) and upload that.",
            RefusalCode.MALFORMED) from e
    except Exception as e:  # untrusted input through a third-party parser
        logger.info("refused %s as malformed", name, exc_info=True)
        raise _malformed(name) from e


def _check_envelope(data: bytes, name: str, max_bytes: int) -> None:
    if not data:
        raise DocumentRefused(f"{name} is empty; choose the file again and upload it.",
                              RefusalCode.EMPTY)
    if len(data) > max_bytes:
        raise DocumentRefused(
            f"{name} is {_megabytes(len(data))}, over the {_megabytes(max_bytes)} limit; "
            "reduce it (e.g. compress its images) and upload it again.", RefusalCode.TOO_LARGE)
    suffix = PurePath(name).suffix.lower()
    if not data.startswith(b"%PDF-"):
        if b"%PDF-" in data[:_SNIFF]:
            raise DocumentRefused(
                f"{name} has extra data before its PDF header and looks damaged; "
                "save it again as a PDF and upload that.", RefusalCode.MALFORMED)
        raise DocumentRefused(f"{name} is not a PDF ({_sniff(data)}); export it as PDF and "
                              "upload the .pdf file.", RefusalCode.NOT_PDF)
    if suffix and suffix != ".pdf":
        raise DocumentRefused(
            f"{name} contains a PDF but is named {suffix}; rename it to end in .pdf and "
            "upload it again.", RefusalCode.NOT_PDF)


def _accept(data: bytes, name: str, signature_limits: sandbox.Limits) -> AcceptedPdf:
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    notes: list[str] = []
    encrypted = reader.encrypt_dict is not None
    if encrypted:
        _unlock(reader, name, notes)
    # Filled signature fields, without parsing their CMS: a broken one is refused naming it
    # (_check_signatures), not as a damaged file.
    signed = any(True for _ in enumerate_sig_fields(reader, filled_status=True))
    if signed and encrypted:
        raise DocumentRefused(
            f"{name} is encrypted and already signed: removing the encryption would break "
            "its signatures; ask the sender for an unencrypted copy.", RefusalCode.ENCRYPTED)
    strip_xfa = _check_xfa(reader, name, signed=signed)
    if strip_xfa:
        notes.append(f"{name} carried an XFA form as well as a regular one; the XFA part was "
                     "removed, the pages and fields are unchanged.")
    if signed:
        return _accept_signed(data, name, reader, signature_limits)
    stored = _rewrite(reader, strip_xfa=strip_xfa)
    # Describe what is stored, read back the way validators will read it.
    out = PdfFileReader(io.BytesIO(stored), strict=True)
    return _describe(stored, data, out, rewritten=True, certification=None, notes=notes)


def _accept_signed(data: bytes, name: str, reader: PdfFileReader,
                   signature_limits: sandbox.Limits) -> AcceptedPdf:
    level = _docmdp_level(reader)
    if level == 1:
        raise DocumentRefused(
            f"{name} is certified with \"no changes allowed\", so no one can sign it again; "
            "upload the document before it was certified.", RefusalCode.CERTIFIED_NO_CHANGES)
    # Its bytes stay as they are, so they must already be what strict validators accept.
    try:
        strict = PdfFileReader(io.BytesIO(data), strict=True)
        extensible = not strict.xrefs.hybrid_xrefs_present
        if extensible:
            _touch_all(strict)
            IncrementalPdfFileWriter(io.BytesIO(data), prev=strict)
    except Exception:  # untrusted input through a third-party parser
        logger.info("signed %s fails strict reading", name, exc_info=True)
        extensible = False
    if not extensible:
        raise DocumentRefused(
            f"{name} is signed, but its file structure can't be extended safely (validators "
            "would reject a new signature on it); ask the sender for the unsigned original.",
            RefusalCode.MALFORMED)
    _check_signatures(data, name, signature_limits)
    return _describe(data, data, strict, rewritten=False, certification=level, notes=[])


def _check_signatures(data: bytes, name: str, limits: sandbox.Limits) -> None:
    """Refuse the upload if any signature in it doesn't hold (trust aside)."""
    try:
        report = check_integrity(data, limits=limits)
    except UnreadablePdf as e:
        logger.info("refused %s: its signatures can't be read: %s", name, e.message)
        raise _malformed(name) from e
    except sandbox.SandboxError as e:
        logger.warning("refused %s: its signatures could not be checked: %s", name, e)
        within = (f"within {limits.seconds:g} s" if e.limit == "time" else
                  f"within {limits.memory_mb} MB of memory" if e.limit == "memory" else
                  "(the checker crashed)")
        raise DocumentRefused(
            f"{name} is signed, but its signatures could not be checked {within}; ask the "
            "sender for the unsigned original or a copy with fewer revisions.",
            RefusalCode.SIGNATURE_UNVERIFIABLE) from e
    broken = [s for s in report.signatures if not s.integrity_ok]
    if not broken:
        return
    first = broken[0]
    what = "document timestamp" if first.kind == SignatureKind.DOCUMENT_TIMESTAMP \
        else "signature"
    by = f" by {first.signer_name}" if first.signer_name else ""
    problem = (first.integrity_problems or ("it does not verify",))[0]
    others = ", ".join(f"'{s.field_name}'" for s in broken[1:])
    also = f" ({others} {'fails' if len(broken) == 2 else 'fail'} too)" if others else ""
    logger.info("refused %s: %s %r: %s", name, what, first.field_name, problem)
    raise DocumentRefused(
        f"{name}: {what} '{first.field_name}'{by} does not match the document: {problem}"
        f"{also}; ask the sender for the original signed file.", RefusalCode.SIGNATURE_INVALID)


def _unlock(reader: PdfFileReader, name: str, notes: list[str]) -> None:
    """Decrypt a file that opens without a password, or refuse it."""
    try:
        handler = reader.security_handler
    except Exception as e:  # an encryption scheme pyHanko doesn't know
        raise _encrypted(name, "with a scheme we can't open") from e
    if isinstance(handler, PubKeySecurityHandler):
        raise _encrypted(name, "for specific recipients' certificates")
    if not isinstance(handler, StandardSecurityHandler):
        raise _encrypted(name, "with a scheme we can't open")
    result = reader.decrypt("")
    if result.status == AuthStatus.FAILED:
        raise _encrypted(name, "with a password")
    perms = result.permission_flags
    may_sign = (StandardPermissions.ALLOW_ANNOTS_FORM_FILLING
                | StandardPermissions.ALLOW_FORM_FILLING)
    if (result.status == AuthStatus.USER and isinstance(perms, StandardPermissions)
            and not perms & may_sign):
        raise DocumentRefused(
            f"{name} is encrypted with permissions that forbid filling in forms and signing; "
            "ask the sender for a copy without those restrictions.",
            RefusalCode.SIGNING_NOT_PERMITTED)
    notes.append(f"{name} was encrypted without a password; it is stored unencrypted.")


def _check_xfa(reader: PdfFileReader, name: str, *, signed: bool) -> bool:
    """True if a static XFA form should be stripped; refuses dynamic XFA."""
    form = _get(reader.root, "/AcroForm")
    if not isinstance(form, generic.DictionaryObject) or "/XFA" not in form:
        return False
    fields = _get(form, "/Fields")
    dynamic = bool(_get(reader.root, "/NeedsRendering")) or not (
        isinstance(fields, generic.ArrayObject) and len(fields) > 0)
    if dynamic:
        raise DocumentRefused(
            f"{name} is a dynamic XFA form: its pages are only a placeholder, so it can't be "
            "signed reliably; fill it in, print it to a new PDF and upload that.",
            RefusalCode.XFA_FORM)
    if signed:
        raise DocumentRefused(
            f"{name} is a signed XFA form, which can't be signed again reliably; print it to a "
            "new PDF and upload that.", RefusalCode.XFA_FORM)
    return True


def _rewrite(reader: PdfFileReader, *, strip_xfa: bool) -> bytes:
    writer = copy_into_new_writer(reader)
    writer.ensure_output_version(reader.input_version)
    root = writer.root
    # Usage rights and DocMDP entries refer to signatures a rewrite has already broken.
    if "/Perms" in root:
        del root["/Perms"]
    if strip_xfa:
        form = root["/AcroForm"]
        del form["/XFA"]
        if "/NeedsRendering" in root:
            del root["/NeedsRendering"]
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _describe(stored: bytes, original: bytes, reader: PdfFileReader, *, rewritten: bool,
              certification: int | None, notes: list[str]) -> AcceptedPdf:
    pages = tuple(page_geometries(reader))
    empty = tuple(str(name) for name, _, _ in enumerate_sig_fields(reader, filled_status=False))
    return AcceptedPdf(
        data=stored, sha256=hashlib.sha256(stored).hexdigest(),
        original_sha256=hashlib.sha256(original).hexdigest(), rewritten=rewritten,
        page_count=len(pages), pages=pages, signature_count=len(reader.embedded_signatures),
        empty_signature_fields=empty, certification=certification, notes=tuple(notes))


def page_geometries(reader: PdfFileReader) -> Iterator[PageGeometry]:
    """Walk the page tree (inheriting boxes and rotation); raises on an inconsistent tree."""
    root_pages = reader.root["/Pages"]
    declared = int(root_pages["/Count"])
    seen: set[tuple[int, int]] = set()
    count = 0
    stack: list[tuple[generic.DictionaryObject, dict[str, generic.PdfObject]]] = [
        (root_pages, {})]
    while stack:
        node, inherited = stack.pop()
        attrs = {**inherited,
                 **{k: node[k] for k in ("/MediaBox", "/CropBox", "/Rotate") if k in node}}
        if "/Kids" not in node:
            count += 1
            yield _geometry(attrs)
            continue
        kids = node["/Kids"]
        for i in reversed(range(len(kids))):
            ref = kids.raw_get(i)
            if not isinstance(ref, generic.IndirectObject):
                raise ValueError("page tree kids must be indirect objects")
            if (ref.idnum, ref.generation) in seen:
                raise ValueError("page tree has a cycle")
            seen.add((ref.idnum, ref.generation))
            stack.append((ref.get_object(), attrs))
    if count != declared or count == 0:
        raise ValueError(f"page tree declares {declared} pages but holds {count}")


def _geometry(attrs: dict[str, generic.PdfObject]) -> PageGeometry:
    media = _rect(attrs["/MediaBox"])
    x0, y0, x1, y1 = _rect(attrs["/CropBox"]) if "/CropBox" in attrs else media
    # Poppler's rules (pdftotext's frame for anchors): a crop box wider or taller than the
    # media box takes the media box's extent in that direction; then it is clipped to it.
    if x1 - x0 > media[2] - media[0]:
        x0, x1 = media[0], media[2]
    if y1 - y0 > media[3] - media[1]:
        y0, y1 = media[1], media[3]
    x0, y0 = max(media[0], x0), max(media[1], y0)
    x1, y1 = min(media[2], x1), min(media[3], y1)
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = media
    rotate = attrs.get("/Rotate")
    degrees = float(rotate) if isinstance(rotate, int | float | generic.FloatObject) else 0.0
    rotation = round(degrees / 90) * 90 % 360
    return PageGeometry(x0, y0, x1, y1, rotation, media)


def _rect(value: generic.PdfObject) -> tuple[float, float, float, float]:
    if not isinstance(value, generic.ArrayObject) or len(value) != 4:
        raise ValueError(f"not a rectangle: {value!r}")
    a, b, c, d = (float(v) for v in value)
    return min(a, c), min(b, d), max(a, c), max(b, d)


def _touch_all(reader: PdfFileReader, limit: int = 1_000_000) -> None:
    """Parse every object reachable from the trailer, so a broken one is found at upload."""
    todo: list[generic.PdfObject] = [reader.trailer_view]
    seen: set[tuple[int, int]] = set()
    while todo:
        obj = todo.pop()
        if isinstance(obj, generic.IndirectObject):
            key = (obj.idnum, obj.generation)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > limit:
                raise ValueError("too many objects")
            todo.append(obj.get_object())
        elif isinstance(obj, generic.DictionaryObject):  # streams too
            todo.extend(obj.raw_get(k) for k in obj)
        elif isinstance(obj, generic.ArrayObject):
            todo.extend(obj.raw_get(i) for i in range(len(obj)))


def _docmdp_level(reader: PdfFileReader) -> int | None:
    """The DocMDP /P of a certification signature (default 2), or None."""
    perms = _get(reader.root, "/Perms")
    sig = _get(perms, "/DocMDP") if isinstance(perms, generic.DictionaryObject) else None
    if not isinstance(sig, generic.DictionaryObject):
        return None
    refs = _get(sig, "/Reference")
    for ref in refs if isinstance(refs, generic.ArrayObject) else ():
        method = _get(ref.get_object(), "/TransformMethod")
        if isinstance(method, generic.NameObject) and method == "/DocMDP":
            params = _get(ref.get_object(), "/TransformParams")
            p = _get(params, "/P") if isinstance(params, generic.DictionaryObject) else None
            return int(p) if isinstance(p, generic.NumberObject) else 2
    return 2


def _get(obj: generic.PdfObject | None, key: str) -> generic.PdfObject | None:
    if not isinstance(obj, generic.DictionaryObject) or key not in obj:
        return None
    value = obj[key]
    return None if isinstance(value, generic.NullObject) else value


def find_anchors(data: bytes, pattern: str = ANCHOR_PATTERN, *,
                 timeout: float = 30.0) -> list[Anchor]:
    """Anchor texts on every page, found with poppler's ``pdftotext -bbox``.

    The label is the pattern's first group (the whole match if it has none). Coordinates are
    PDF user space points (origin bottom-left, page rotation undone), ready for a
    signature field's ``/Rect``.
    """
    regex = re.compile(pattern)
    geometries = list(page_geometries(PdfFileReader(io.BytesIO(data), strict=False)))
    anchors: list[Anchor] = []
    for page_index, words in enumerate(_bbox_words(data, timeout)):
        if page_index >= len(geometries):
            break
        geo = geometries[page_index]
        for text, (wx0, wy0, wx1, wy1) in words:
            ux0, uy0 = _to_user(geo, wx0, wy1)
            ux1, uy1 = _to_user(geo, wx1, wy0)
            ux0, ux1 = sorted((ux0, ux1))
            uy0, uy1 = sorted((uy0, uy1))
            for m in regex.finditer(text):
                # A match inside a longer word: interpolate along the word, assuming text
                # runs left to right in user space (good enough to place a field by it).
                left = ux0 + (ux1 - ux0) * m.start() / len(text)
                right = ux0 + (ux1 - ux0) * m.end() / len(text)
                label = m.group(1) if regex.groups else m.group(0)
                anchors.append(Anchor(page_index, label, left, uy0, right, uy1))
    return anchors


_PAGE_RE = re.compile(rb"<page\b[^>]*>(.*?)</page>", re.S)
_WORD_RE = re.compile(rb'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" '
                      rb'yMax="([-\d.]+)">(.*?)</word>', re.S)
Word = tuple[str, tuple[float, float, float, float]]


def _bbox_words(data: bytes, timeout: float) -> list[list[Word]]:
    """Words per page in pdftotext's device space (points, origin top-left of the view)."""
    with tempfile.TemporaryDirectory(prefix="dealdesk-anchors-") as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(data)
        try:
            done = subprocess.run(  # noqa: S603 - fixed program, our own temp file
                [PDFTOTEXT, "-bbox", "-enc", "UTF-8", str(path), "-"],
                capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as e:
            raise AnchorSearchFailed(f"{PDFTOTEXT} is missing: install poppler-utils") from e
        except subprocess.TimeoutExpired as e:
            raise AnchorSearchFailed(f"pdftotext took longer than {timeout:g} s") from e
    if done.returncode != 0:
        raise AnchorSearchFailed(
            f"pdftotext failed ({done.returncode}): {done.stderr.decode(errors='replace')[-300:]}")
    pages: list[list[Word]] = []
    for page in _PAGE_RE.finditer(done.stdout):
        pages.append([
            (html.unescape(m.group(5).decode("utf-8", errors="replace")),
             (float(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4))))
            for m in _WORD_RE.finditer(page.group(1))])
    return pages


def _to_user(geo: PageGeometry, x: float, y: float) -> tuple[float, float]:
    """pdftotext's view of a page back to PDF user space.

    pdftotext -bbox lays out the *media* box (not the crop box), rotated as displayed, with
    the origin at the top left.
    """
    mx0, my0, mx1, my1 = geo.media_box
    if geo.rotation == 90:
        return mx0 + y, my0 + x
    if geo.rotation == 180:
        return mx1 - x, my0 + y
    if geo.rotation == 270:
        return mx1 - y, my1 - x
    return mx0 + x, my1 - y


def _display_name(filename: str) -> str:
    base = PurePath(filename.replace("\\", "/")).name or "the file"
    clean = "".join(ch for ch in base if ch.isprintable())
    return clean[:80] + ("…" if len(clean) > 80 else "")


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} KB"


def _sniff(data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"PK\x03\x04"):
        return "it looks like a Word document or another zip archive"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "it looks like an old Office document"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*")):
        return "it looks like an image"
    return "it does not start with a PDF header"


def _encrypted(name: str, how: str) -> DocumentRefused:
    return DocumentRefused(
        f"{name} is encrypted {how}; remove the encryption (save a copy without a password) "
        "and upload it again.", RefusalCode.ENCRYPTED)


def _malformed(name: str) -> DocumentRefused:
    return DocumentRefused(
        f"{name} is damaged or uses PDF syntax we can't process safely; open it and save or "
        "print it to a new PDF, then upload that.", RefusalCode.MALFORMED)


UPLOAD_LIMITS = sandbox.Limits(seconds=90, memory_mb=2048)
"""For :func:`check_upload`: a 25 MB PDF with a few signatures takes about a second."""


@dataclass(frozen=True)
class CheckedUpload:
    accepted: AcceptedPdf
    anchors: tuple[Anchor, ...]
    """The ``[[sign:…]]`` anchors, when asked for."""


def check_upload(data: bytes, *, filename: str, max_bytes: int, with_anchors: bool,
                 limits: sandbox.Limits = UPLOAD_LIMITS) -> CheckedUpload:
    """:func:`accept_pdf` and, if asked, :func:`find_anchors`, in a child process
    (``documents.sandbox``): parsing and rewriting an untrusted upload is seconds of pure
    Python for a big file, and in the web process that CPU work held the GIL the event loop
    needs. Raises what they raise, or :class:`DocumentRefused` when the check overran its
    limits."""
    try:
        out = sandbox.run(_check_upload, data, filename, max_bytes, with_anchors,
                          limits=limits)
    except sandbox.SandboxError as e:
        raise DocumentRefused(f"{_display_name(filename)} could not be checked: {e}; save it "
                              "again as a simpler PDF (e.g. print to PDF) and upload that.",
                              RefusalCode.MALFORMED) from e
    checked: CheckedUpload = pickle.loads(out)  # noqa: S301 - our own child's answer
    return checked


def _check_upload(data: bytes, filename: str, max_bytes: int, with_anchors: bool) -> bytes:
    accepted = accept_pdf(data, filename=filename, max_bytes=max_bytes)
    anchors = tuple(find_anchors(accepted.data)) if with_anchors else ()
    return pickle.dumps(CheckedUpload(accepted, anchors))
