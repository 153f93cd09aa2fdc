"""Zip archives (DOCX, XLSX) made byte-stable: equal documents give equal bytes."""

from __future__ import annotations

import io
import zipfile

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can carry; every entry gets it."""


def stable_zip(data: bytes) -> bytes:
    """The same archive with fixed timestamps, so equal documents are equal bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME),
                         src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
