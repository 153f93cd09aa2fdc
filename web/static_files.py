"""The app's own static files (CSS, JS, icons), served from memory.

They are a few small files shipped in the package, so they are read once at start-up and
answered without a thread hop or a file-system call: Starlette's ``StaticFiles`` stats and
reads every file on the thread pool, and under a burst of store-bound requests those hops
queued behind them. Each file has a strong ETag (its SHA-256), ``If-None-Match`` answers 304,
and browsers may cache for a day.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.types import Receive, Scope, Send

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class _File:
    body: bytes
    etag: str
    media_type: str


class MemoryStatic:
    """An ASGI app answering GET/HEAD for the files directly in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._files: dict[str, _File] = {}
        for path in sorted(directory.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                body = path.read_bytes()
                media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] \
                    or "application/octet-stream"
                self._files[path.name] = _File(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"',
                                               media)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        name = str(scope.get("path", "")).rsplit("/", 1)[-1]
        found = self._files.get(name)
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"", [(b"allow", b"GET, HEAD")])
            return
        if found is None:
            await _answer(send, 404, b"Not Found", [(b"content-type", b"text/plain")])
            return
        headers = [(b"etag", found.etag.encode()), (b"cache-control", b"public, max-age=86400"),
                   (b"content-type", found.media_type.encode())]
        sent = {k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in scope.get("headers", [])}.get("if-none-match", "")
        if found.etag in [tag.strip() for tag in sent.split(",")]:
            await _answer(send, 304, b"", headers)
            return
        body = b"" if scope["method"] == "HEAD" else found.body
        await _answer(send, 200, body, [*headers,
                                        (b"content-length", str(len(found.body)).encode())])


async def _answer(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
