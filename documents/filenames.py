"""File names from uploads, made safe to store, show and mail.

An upload's name is the uploader's text: ``..\\..\\boot.ini``, ``invoice\u202efdp.exe`` (a
right-to-left override that shows as ``invoiceexe.pdf``), control characters, 4,000
characters. :func:`safe_filename` keeps the last path component only (either separator), drops
control and bidirectional formatting characters, normalises Unicode (NFC), trims dots and
spaces at the ends and bounds the length while keeping the extension.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 120
# Bidi embeddings, overrides and isolates, and the marks: they reorder what a reader sees.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F,
                          0x061C)}


def _visible(ch: str) -> bool:
    return ch not in _BIDI and unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")


def safe_filename(name: str | None, default: str = "document") -> str:
    """The last path component of ``name`` without control or bidi characters, at most
    :data:`MAX_LENGTH` characters (extension kept); ``default`` when nothing is left."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch if _visible(ch) else "" for ch in text)
    text = " ".join(text.split()).strip(" .")
    if not text:
        return default
    if len(text) > MAX_LENGTH:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            text = stem[: MAX_LENGTH - len(ext) - 2].rstrip(" .") + "…." + ext
        else:
            text = text[: MAX_LENGTH - 1] + "…"
    return text
