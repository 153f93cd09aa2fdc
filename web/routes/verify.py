"""Signature verification page: upload a signed PDF, see each signature's verdict.

Any logged-in user may use it. The upload's size is checked from Content-Length before
anything parses the body; pyHanko runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from documents import verify as verification
from documents.filenames import safe_filename
from web.auth import CurrentUser
from web.deps import SettingsDep
from web.errors import AppError, Invalid, TooLarge, Unavailable
from web.render import render

router = APIRouter(include_in_schema=False)
MAX_UPLOAD = 25 * 1024 * 1024
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers and the CSRF field


class LengthRequired(AppError):
    status = 411


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


async def limit_upload(request: Request) -> None:
    """Refuse an oversized upload before the form (and its file) is parsed.

    Runs ahead of the login and CSRF checks, which read the form. The server enforces
    Content-Length framing, so the header is a reliable bound on the body.
    """
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise LengthRequired("send the PDF as an ordinary form upload (with Content-Length)",
                             field="file")
    if int(length) > MAX_UPLOAD + _FORM_OVERHEAD:
        raise TooLarge(f"the upload is {_megabytes(int(length))}; the limit is "
                       f"{_megabytes(MAX_UPLOAD)}: upload a smaller PDF", field="file")


def _check(data: bytes, pki_dir: Path) -> verification.VerificationReport:
    """Blocking: loads the default trust roots and runs pyHanko (call on a worker thread)."""
    try:
        roots = verification.default_trust_roots(pki_dir)
    except ValueError as e:
        raise Unavailable(f"the internal CA certificate cannot be read ({e}); ask an admin "
                          "to restore it") from None
    return verification.verify_pdf(data, roots)


@router.get("/verify")
async def verify_page(request: Request, user: CurrentUser) -> Response:
    return render(request, "verify.html", {})


@router.post("/verify", dependencies=[Depends(limit_upload)])
async def verify_upload(request: Request, user: CurrentUser,
                        settings: SettingsDep) -> Response:
    form = await request.form()  # parsed once already by the CSRF check; cached
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise Invalid("choose the signed PDF to check", field="file")
    name = safe_filename(upload.filename, "document.pdf")
    try:
        data = await upload.read(MAX_UPLOAD + 1)
    finally:
        await upload.close()
    if len(data) > MAX_UPLOAD:
        raise TooLarge(f"{name} is larger than {_megabytes(MAX_UPLOAD)}: upload a smaller PDF",
                       field="file")
    if not data:
        raise Invalid(f"{name} is empty: choose the signed PDF", field="file")
    if b"%PDF-" not in data[:1024]:
        raise Invalid(f"{name} is not a PDF (it has no %PDF- header): upload the signed PDF "
                      "itself", field="file")
    try:
        report = await asyncio.to_thread(_check, data, settings.pki_dir)
    except verification.UnreadablePdf as e:
        return render(request, "verify.html", {"filename": name, "unreadable": e.message},
                      block="report", status_code=422)
    return render(request, "verify.html", {"filename": name, "report": report},
                  block="report")
