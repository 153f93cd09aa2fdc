"""Spec sheets and drawings appended to a generated PDF: PDFs page by page, PNG and JPEG
images as one A4 page each (landscape for a wide image), checked first.

The result stays a plain PDF, so it can be signed later: encrypted attachments and ones with
form fields or signatures are refused; other annotations of attached PDFs (links, comments)
are dropped with their page content kept; no ``/AcroForm`` is left. Every refusal is an
:class:`AttachmentError` naming the file and the fix.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

_IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
_MAX_PIXELS = 40_000_000  # a larger image is refused before Pillow decodes it


class AttachmentError(ValueError):
    """An attachment that can't be appended."""


@dataclass(frozen=True)
class Attachment:
    name: str  # file name shown, e.g. "WS-9 spec sheet.pdf"
    content: bytes
    media_type: str  # "application/pdf", "image/png" or "image/jpeg"; the content must match


def pages_of(att: Attachment) -> PdfReader:
    """The attachment's pages, checked (raises :class:`AttachmentError`)."""
    if att.media_type == "application/pdf":
        return _pdf(att)
    return PdfReader(io.BytesIO(_image_page(att)))


def append_pages(pdf: bytes, attachments: Sequence[PdfReader]) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    for reader in attachments:
        for page in reader.pages:
            writer.add_page(page, excluded_keys=("/Annots", "/AA"))
    writer.root_object.pop("/AcroForm", None)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf(att: Attachment) -> PdfReader:
    unreadable = AttachmentError(f"{att.name} is not a readable PDF; open it, save or print "
                                    "it as a new PDF and attach that")
    if b"%PDF-" not in att.content[:1024]:
        raise unreadable
    try:
        reader = PdfReader(io.BytesIO(att.content))
        if reader.is_encrypted:
            raise AttachmentError(f"{att.name} is password-protected (encrypted); save an "
                                     "unprotected copy (e.g. print it to PDF) and attach that")
        widgets = [annot for page in reader.pages for annot in page.get("/Annots") or ()
                   if annot.get_object().get("/Subtype") == "/Widget"]
    except AttachmentError:
        raise
    except Exception as e:  # untrusted input through pypdf, which raises many types
        raise unreadable from e
    if not reader.pages:
        raise AttachmentError(f"{att.name} has no pages; attach a PDF with content")
    if widgets:
        raise AttachmentError(f"{att.name} has form fields or signatures, which would stay "
                                 "editable in the quote; print it to a new PDF (which flattens "
                                 "them) and attach that")
    return reader


def _image_page(att: Attachment) -> bytes:
    """One A4 page (landscape for a wide image) with the image fitted inside 15 mm margins."""
    expected = _IMAGE_FORMATS.get(att.media_type)
    if expected is None:
        raise AttachmentError(f"{att.name} is of type {att.media_type!r}; only PDF, PNG and "
                                 "JPEG files can be attached to a quote")
    try:
        with Image.open(io.BytesIO(att.content)) as im:
            if im.format != expected:
                found = f"a {im.format} image" if im.format else "not an image"
                raise AttachmentError(f"{att.name} is declared as {expected} but is {found}; "
                                         "attach it again with the right file type")
            if im.width * im.height > _MAX_PIXELS:
                raise AttachmentError(f"{att.name} is {im.width} × {im.height} pixels, over "
                                         f"the {_MAX_PIXELS // 1_000_000} megapixel limit; "
                                         "scale it down and attach it again")
            im.load()
            dpi = min(max(float(im.info.get("dpi", (96, 96))[0]), 72.0), 600.0)
            if expected == "JPEG" and im.mode in ("RGB", "L") \
                    and im.getexif().get(0x0112, 1) == 1:  # upright: embed the JPEG as is
                source, size = ImageReader(io.BytesIO(att.content)), im.size
            else:
                upright = ImageOps.exif_transpose(im).convert("RGBA")
                flat = Image.new("RGB", upright.size, "white")
                flat.paste(upright, mask=upright.getchannel("A"))
                source, size = ImageReader(flat), flat.size
    except AttachmentError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad data
        raise AttachmentError(f"{att.name} is not a readable {expected} image; open it, "
                                 "save it again and attach the new file") from e
    width, height = size
    page_w, page_h = landscape(A4) if width > height else A4
    scale = min((page_w - 30 * mm) / width, (page_h - 30 * mm) / height, 72 / dpi)
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(page_w, page_h), invariant=1)
    canvas.drawImage(source, (page_w - width * scale) / 2, (page_h - height * scale) / 2,
                     width * scale, height * scale)
    canvas.showPage()
    canvas.save()
    return out.getvalue()
