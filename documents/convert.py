"""DOCX → PDF with LibreOffice headless, kept warm by ``unoserver``.

Exceptions (all :class:`ConversionError`):

- :class:`ConversionFailed` — *this document* can't be converted: it isn't a DOCX, it is
  damaged or password-protected, LibreOffice refused it or took longer than the timeout.
  The uploader can act on it (a 4xx); the message names the file and the fix.
- :class:`ConverterUnavailable` — LibreOffice can't run at all (no warm server and no cold
  ``soffice``): an operator problem (a 5xx).

How it runs: a :class:`Converter` starts ``unoserver`` once, on Debian's ``/usr/bin/python3``
(it needs ``uno``) from the venv ``scripts/bootstrap.sh`` makes in ``.venv-uno/``, with its own
LibreOffice profile and free ports, and converts over unoserver's XML-RPC API (about 0.1-0.5 s
a document instead of about 1.7 s for a cold ``soffice``). A server that died is restarted on
the next conversion. Only if the warm server can't start does it fall back to a cold
``soffice --convert-to pdf`` with its own profile. The import filter is forced to Word 2007+
(LibreOffice would otherwise happily turn any text file into a PDF), and form fields are not
exported: live fields in a contract could be changed after the first signature (pyHanko's diff
policy accepts form filling after an approval signature).

Blocking: call it from sync code on a thread pool (a sync activity), never in ``async def``.
One converter serialises its conversions (LibreOffice converts one document at a time anyway).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import io
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xmlrpc.client
import zipfile
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Literal, Self

from unoserver.client import API_VERSION as _UNOSERVER_API  # no uno needed on this side

logger = logging.getLogger(__name__)

DEFAULT_UNO_VENV = Path(__file__).resolve().parent.parent / ".venv-uno"
# LibreOffice's launcher (libreoffice-writer-nogui); dealdesk/tools.py registers it.
SOFFICE = "soffice"
DOCX_IMPORT_FILTER = "MS Word 2007 XML"
_PDF_OPTIONS = ["ExportFormFields=false"]
_COLD_PDF_FILTER = 'pdf:writer_pdf_Export:{"ExportFormFields":{"type":"boolean","value":"false"}}'
_MAX_UNPACKED = 300 * 1024 * 1024  # a DOCX that inflates beyond this is refused (zip bomb)


class ConversionError(Exception):
    """Base of the converter's errors."""


class ConversionFailed(ConversionError):
    """This document can't be converted; the message names the file and what to do."""

    def __init__(self, message: str, *, filename: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.detail = detail  # LibreOffice's own words, for logs rather than people


class ConverterUnavailable(ConversionError):
    """LibreOffice can't be run (neither the warm server nor a cold ``soffice``)."""


_INDEX_FIELD = re.compile(rb'(?:<w:instrText[^>]*>|w:instr=")\s*(?:TOC|INDEX|TOA)\b')


def has_index(data: bytes) -> bool:
    """Whether a (checked) DOCX has a table of contents or another index field. Only then
    does the warm conversion update indexes: unoserver's update lays the document out twice
    more (about a third of a 30-page conversion), which a document without one never needs."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return _INDEX_FIELD.search(archive.read("word/document.xml")) is not None


def check_docx(data: bytes, filename: str) -> frozenset[str]:
    """Refuse anything that isn't a readable DOCX (a zip with ``word/document.xml``).

    Returns the archive's member names.
    """
    name = _display_name(filename)
    if not data:
        raise ConversionFailed(f"{name} is empty; choose the file again and upload it.",
                               filename=name)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ConversionFailed(
            f"{name} is password-protected or an old Word (.doc) file; remove the password or "
            "save it as .docx in Word, then upload it again.", filename=name)
    if not data.startswith(b"PK"):
        raise ConversionFailed(f"{name} is not a Word document (.docx); save it as .docx and "
                               "upload it again.", filename=name)
    damaged = ConversionFailed(
        f"{name} is damaged (its .docx archive can't be read); open it in Word, save it again "
        "and upload the new file.", filename=name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "word/document.xml" not in archive.namelist():
                raise ConversionFailed(
                    f"{name} is a zip archive but not a Word document (it has no "
                    "word/document.xml); save it as .docx and upload it again.", filename=name)
            if sum(info.file_size for info in archive.infolist()) > _MAX_UNPACKED:
                raise ConversionFailed(
                    f"{name} unpacks to more than {_MAX_UNPACKED // 1024 // 1024} MB; reduce "
                    "its images and upload it again.", filename=name)
            if archive.testzip() is not None:  # CRC check of every member
                raise damaged
            return frozenset(archive.namelist())
    except (ConversionFailed, MemoryError):  # out of memory is a limit, not a damaged file
        raise
    except Exception as e:  # zipfile, zlib and friends each raise their own types
        raise damaged from e


class Converter:
    """A warm LibreOffice for DOCX → PDF; close it (or use ``with``) to stop its processes.

    ``uno_venv`` is a venv made with ``/usr/bin/python3 -m venv --system-site-packages`` that
    has ``unoserver`` installed (``scripts/bootstrap.sh`` makes ``.venv-uno/``). ``work_dir``
    holds the LibreOffice profiles, temp files and the server log; a private temp dir (removed
    on close) when not given.
    """

    def __init__(self, *, uno_venv: Path = DEFAULT_UNO_VENV, work_dir: Path | None = None,
                 soffice: str = SOFFICE, start_timeout: float = 60.0,
                 convert_timeout: int = 120, retry_warm_after: float = 300.0) -> None:
        self.uno_venv = uno_venv
        self.soffice = soffice
        self.start_timeout = start_timeout
        self.convert_timeout = convert_timeout
        self.retry_warm_after = retry_warm_after
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="dealdesk-lo-")) if work_dir is None \
            else work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._warm_retry_at = 0.0
        self._closed = False
        self.last_mode: Literal["warm", "cold"] | None = None
        """How the last successful conversion ran (for logs and tests)."""

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def server_pid(self) -> int | None:
        """The unoserver process (also its process group id), if one is running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the warm server now rather than on the first conversion."""
        with self._lock:
            self._ensure_open()
            if self.server_pid is None:
                self._start_server()

    def close(self) -> None:
        """Stop the server and every LibreOffice process it started; idempotent."""
        with self._lock:
            self._closed = True
            self._stop_server()
            if self._own_dir:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- converting ------------------------------------------------------------------------

    def convert(self, data: bytes, *, filename: str) -> bytes:
        """The PDF rendering of a DOCX; raises :class:`ConversionFailed` naming the file."""
        members = check_docx(data, filename)
        name = _display_name(filename)
        with self._lock:
            self._ensure_open()
            # Debian's -nogui LibreOffice lacks Writer's UI definitions; a live (warm) instance
            # aborts or refuses to load once it builds a comment's sidebar window. A cold
            # --convert-to never gets that far, so documents with comments go cold directly.
            if "word/comments.xml" not in members and self._warm_available():
                pdf = self._convert_warm(data, name)
                if pdf is not None:
                    self.last_mode = "warm"
                    return pdf
            pdf = convert_cold(data, name, soffice=self.soffice,
                               profile_dir=self.work_dir / "profile-cold",
                               timeout=self.convert_timeout)
            self.last_mode = "cold"
            return pdf

    def _warm_available(self) -> bool:
        if self.server_pid is not None:
            return True
        if time.monotonic() < self._warm_retry_at:
            return False
        try:
            self._start_server()
        except ConverterUnavailable:
            logger.warning("warm LibreOffice unavailable; converting cold for %.0f s",
                           self.retry_warm_after, exc_info=True)
            self._warm_retry_at = time.monotonic() + self.retry_warm_after
            return False
        return True

    def _convert_warm(self, data: bytes, name: str) -> bytes | None:
        """The PDF, or None to have the caller convert cold.

        None when the warm LibreOffice refused the document or died on it (a cold run gives
        the verdict: it fails on damaged files too, but not on the warm instance's own limits)
        or when the server can't be restarted. A timeout is final.
        """
        for attempt in (1, 2):
            proxy = self._proxy(self.convert_timeout + 15)
            try:
                result = proxy.convert(None, xmlrpc.client.Binary(data), None, "pdf", None,
                                       _PDF_OPTIONS, has_index(data), DOCX_IMPORT_FILTER,
                                       None)
            except xmlrpc.client.Fault as e:
                if "TimeoutError" in e.faultString:
                    self._stop_server()  # unoserver has killed its LibreOffice
                    raise _too_slow(name, self.convert_timeout) from e
                if self.server_pid is not None:
                    logger.info("warm LibreOffice refused %s (%s); trying cold", name,
                                e.faultString)
                    return None
                logger.warning("LibreOffice died converting %s (attempt %d)", name, attempt)
            except TimeoutError as e:
                self._stop_server()
                raise _too_slow(name, self.convert_timeout) from e
            except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError):
                logger.warning("unoserver connection lost converting %s (attempt %d)", name,
                               attempt, exc_info=True)
            else:
                pdf = result.data if isinstance(result, xmlrpc.client.Binary) else b""
                if pdf.startswith(b"%PDF-"):
                    return pdf
                logger.warning("warm LibreOffice returned no PDF for %s; trying cold", name)
                return None
            # The server went away mid-conversion: restart it and try once more, then cold.
            self._stop_server()
            if attempt == 2:
                return None
            try:
                self._start_server()
            except ConverterUnavailable:
                logger.warning("could not restart unoserver", exc_info=True)
                return None
        return None

    # -- the server process ----------------------------------------------------------------

    def _start_server(self) -> None:
        python = self.uno_venv / "bin" / "python"
        if not python.exists():
            raise ConverterUnavailable(
                f"{python} is missing: run scripts/bootstrap.sh (it makes the unoserver venv)")
        soffice = shutil.which(self.soffice)
        if soffice is None:
            raise ConverterUnavailable(f"{self.soffice} is missing: install LibreOffice "
                                       "(apt-get install libreoffice-writer-nogui)")
        self._stop_server()
        last = "no attempt"
        for _ in range(2):  # a second try with new ports if someone took ours meanwhile
            port, uno_port = _free_ports(2)
            tmp = self.work_dir / "tmp"
            tmp.mkdir(exist_ok=True)
            cmd = [str(python), "-m", "unoserver.server", "--interface", "127.0.0.1",
                   "--port", str(port), "--uno-interface", "127.0.0.1",
                   "--uno-port", str(uno_port), "--executable", soffice,
                   # unoserver turns this plain path into a file:// URI itself.
                   "--user-installation", str(self.work_dir / "profile-warm"),
                   "--conversion-timeout", str(self.convert_timeout), "--temp-dir", str(tmp)]
            log = self.work_dir / "unoserver.log"
            proc = _spawn_kept(cmd, log, env=_uno_env())
            self._proc, self._port = proc, port
            deadline = time.monotonic() + self.start_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    ready = self._ready()
                except ConverterUnavailable:
                    self._stop_server()
                    raise
                if ready:
                    logger.info("unoserver %d ready on port %d", proc.pid, port)
                    return
                time.sleep(0.2)
            last = (f"exited with {proc.returncode}" if proc.poll() is not None
                    else f"not ready after {self.start_timeout:g} s")
            self._stop_server()
        raise ConverterUnavailable(f"unoserver {last}; see {self.work_dir / 'unoserver.log'}")

    def _ready(self) -> bool:
        try:
            info = self._proxy(2.0).info()
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            return False
        api = info.get("api") if isinstance(info, dict) else None
        if api != _UNOSERVER_API:
            raise ConverterUnavailable(
                f"unoserver speaks API {api}, we speak {_UNOSERVER_API}: "
                "reinstall .venv-uno with scripts/bootstrap.sh")
        return True

    def _proxy(self, timeout: float) -> xmlrpc.client.ServerProxy:
        # Our own proxy rather than unoserver.client.UnoClient: that one has no socket timeout
        # and retries a refused connection for 50 s. The calls are the same as its.
        return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self._port}", allow_none=True,
                                         transport=_TimeoutTransport(timeout))

    def _stop_server(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_group(proc)

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Converter is closed")


def convert_cold(data: bytes, filename: str, *, soffice: str = SOFFICE,
                 profile_dir: Path | None = None, timeout: float = 120.0) -> bytes:
    """One cold ``soffice --headless --convert-to pdf`` run (the warm converter's fallback).

    ``profile_dir`` must not be shared with another running LibreOffice (a second ``soffice``
    on one profile silently exits 1); a throwaway profile is used when not given.
    """
    check_docx(data, filename)
    name = _display_name(filename)
    with tempfile.TemporaryDirectory(prefix="dealdesk-soffice-") as tmp:
        src = Path(tmp) / "document.docx"
        src.write_bytes(data)
        outdir = Path(tmp) / "out"
        profile = profile_dir or Path(tmp) / "profile"
        cmd = [soffice, f"-env:UserInstallation={profile.resolve().as_uri()}", "--headless",
               "--invisible", "--nologo", "--nodefault", "--norestore", "--nolockcheck",
               f"--infilter={DOCX_IMPORT_FILTER}", "--convert-to", _COLD_PDF_FILTER,
               "--outdir", str(outdir), str(src)]
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own arguments
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=_die_with_parent, env=_uno_env())
        except FileNotFoundError as e:
            raise ConverterUnavailable(f"{soffice} is missing: install LibreOffice "
                                       "(apt-get install libreoffice-writer-nogui)") from e
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            _stop_group(proc, grace=0)
            raise _too_slow(name, timeout) from e
        finally:
            _stop_group(proc, grace=2)  # oosplash may leave soffice.bin behind
        pdf_path = outdir / "document.pdf"
        stderr = err.decode(errors="replace")
        if not pdf_path.exists():
            if "could not be loaded" in stderr:
                raise _unreadable(name, stderr.strip())
            raise ConverterUnavailable(f"soffice exited {proc.returncode} without output: "
                                       f"{stderr.strip()[-300:]}")
        pdf = pdf_path.read_bytes()
    if not pdf.startswith(b"%PDF-"):
        raise _unreadable(name, f"output starts with {pdf[:16]!r}")
    return pdf


# -- helpers -------------------------------------------------------------------------------


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


def _spawn_kept(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a process from a thread that lives exactly as long as it.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process: a
    server started from a pool thread would die with that thread. A keeper thread that waits
    for the process ties the signal to our process instead.
    """
    handed: queue.Queue[subprocess.Popen[bytes] | BaseException] = queue.Queue()

    def keep() -> None:
        try:
            with open(log, "ab") as out:
                proc = subprocess.Popen(  # noqa: S603 - our own arguments
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent, env=env)
        except BaseException as e:  # handed to the caller, who raises it
            handed.put(e)
            return
        handed.put(proc)
        proc.wait()

    threading.Thread(target=keep, name="unoserver-keeper", daemon=True).start()
    try:
        got = handed.get(timeout=30)
    except queue.Empty as e:
        raise ConverterUnavailable(f"{cmd[0]} did not start within 30 s") from e
    if isinstance(got, BaseException):
        raise ConverterUnavailable(f"could not start {cmd[0]}: {got}") from got
    return got


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process and its group: SIGTERM the leader, then SIGKILL whatever is left.

    Only the leader gets SIGTERM: unoserver forwards it to oosplash, which stops
    soffice.bin and exits. Signalling the whole group instead makes soffice.bin exit under
    oosplash's feet, and oosplash then hangs.
    """
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    if grace > 0 and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        if _wait_group(proc, pgid, grace):
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _wait_group(proc, pgid, 5.0)


def _wait_group(proc: subprocess.Popen[bytes], pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)  # reap the leader so it doesn't count as a member
        if not _group_alive(pgid):
            return True
        if time.monotonic() > deadline:
            return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg; look for a member that is not one.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if its parent (thread) dies, so nothing is orphaned."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _uno_env() -> dict[str, str]:
    """Our environment minus what would point Debian's Python at this venv's packages."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _display_name(filename: str) -> str:
    base = PurePath(filename.replace("\\", "/")).name or "the document"
    clean = "".join(ch for ch in base if ch.isprintable())
    return clean[:80] + ("…" if len(clean) > 80 else "")


def _unreadable(name: str, detail: str) -> ConversionFailed:
    return ConversionFailed(
        f"LibreOffice could not read {name}: it is damaged or not a valid Word document; open "
        "it in Word, save it as .docx again and upload the new file.", filename=name,
        detail=detail)


def _too_slow(name: str, timeout: float) -> ConversionFailed:
    return ConversionFailed(
        f"{name} took longer than {timeout:g} s to convert; simplify it (fewer or smaller "
        "images, fewer pages) and upload it again.", filename=name)
