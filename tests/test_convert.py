"""documents.convert: DOCX → PDF through a warm unoserver, its restart and cold fallback.

Needs LibreOffice (libreoffice-writer-nogui, python3-uno) and .venv-uno from
scripts/bootstrap.sh. Fixtures: tests/fixtures/docx/MANIFEST.md.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from documents.convert import (
    DEFAULT_UNO_VENV,
    ConversionFailed,
    Converter,
    check_docx,
    convert_cold,
    has_index,
)
from documents.intake import accept_pdf, find_anchors

DOCX = Path(__file__).parent / "fixtures" / "docx"
STARTUP: dict[str, float] = {}

pytestmark = pytest.mark.skipif(
    not (DEFAULT_UNO_VENV / "bin" / "python").exists(),
    reason="no .venv-uno: run scripts/bootstrap.sh")


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converter]:
    work = tmp_path_factory.mktemp("lo")
    with Converter(work_dir=work) as conv:
        started = time.monotonic()
        conv.start()
        STARTUP["warm"] = time.monotonic() - started
        yield conv
    assert processes_using(work) == []


def processes_using(path: Path) -> list[int]:
    """Live processes whose command line mentions ``path`` (our profile dirs are in it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path).encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def eventually_none(path: Path, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_using(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def pdf_text(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True,
                          timeout=60, check=True)
    return " ".join(done.stdout.decode().split())


def page_count(pdf: bytes) -> int:
    return int(PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Count"])


@pytest.mark.parametrize(("name", "pages", "snippets"), [
    ("python-docx__sct-first-page-hdrftr.docx", 6,
     ["First page.", "Page 6, Third page of section 2."]),
    ("fedramp_ac-2_v2.1_excerpt.docx", 11,
     ["ACCOUNT MANAGEMENT (AC-2)", "Company Sensitive and Proprietary"]),
    ("docxcompose__content_controls.docx", 1,
     ["Content Control Plain Text Multiline", "Klicken oder tippen Sie hier"]),
])
def test_converts_docx_warm(converter: Converter, name: str, pages: int,
                            snippets: list[str]) -> None:
    pdf = converter.convert((DOCX / name).read_bytes(), filename=name)
    assert converter.last_mode == "warm"
    assert page_count(pdf) == pages
    text = pdf_text(pdf)
    for snippet in snippets:
        assert snippet in text
    # No live form fields: they could be changed after the first signature.
    assert "/AcroForm" not in PdfFileReader(io.BytesIO(pdf)).root


def test_document_with_comments_converts_cold(converter: Converter) -> None:
    name = "python-docx__comments-rich-para.docx"
    pdf = converter.convert((DOCX / name).read_bytes(), filename=name)
    assert converter.last_mode == "cold"  # the -nogui warm instance can't lay out comments
    assert page_count(pdf) == 1
    assert "Some text worthy of note." in pdf_text(pdf)


def make_docx(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def corrupt_document_xml(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "word/document.xml":
                body = b"<w:document garbage <<<"
            dst.writestr(info, body)
    return out.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return out.getvalue()


@pytest.mark.parametrize(("data", "says"), [
    (b"", "is empty"),
    (b"Dear customer,\nplease sign.\n", "not a Word document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "password-protected or an old Word"),
    (zip_of({"xl/workbook.xml": b"<workbook/>"}), "no word/document.xml"),
    (make_docx("Hello")[:3000], "damaged"),
    (corrupt_document_xml(make_docx("Hello")), "could not read"),
])
def test_broken_input_is_conversion_failed_naming_the_file(converter: Converter, data: bytes,
                                                           says: str) -> None:
    with pytest.raises(ConversionFailed) as failed:
        converter.convert(data, filename="Proposal v2.docx")
    assert "Proposal v2.docx" in failed.value.message
    assert says in failed.value.message
    assert failed.value.filename == "Proposal v2.docx"


def test_check_docx_lists_members() -> None:
    assert "word/document.xml" in check_docx(make_docx("x"), "a.docx")


def with_field(instruction: str, *, simple: bool) -> bytes:
    """A DOCX whose one paragraph holds a field with ``instruction``."""
    document = docx.Document()
    paragraph = document.add_paragraph()
    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    if simple:
        field = paragraph._p.makeelement(w + "fldSimple", {w + "instr": instruction})
    else:
        field = paragraph._p.makeelement(w + "r", {})
        text = field.makeelement(w + "instrText", {})
        text.text = instruction
        field.append(text)
    paragraph._p.append(field)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def test_only_documents_with_an_index_have_it_updated() -> None:
    """The warm conversion updates indexes (two more layouts) only where there is one."""
    assert has_index(with_field(' TOC \\o "1-3" \\h \\z \\u ', simple=False))
    assert has_index(with_field('TOC \\o "1-1"', simple=True))
    assert has_index(with_field(" INDEX \\e ", simple=False))
    assert not has_index(with_field(" PAGE ", simple=False))
    assert not has_index(with_field(" DATE ", simple=True))
    assert not has_index(make_docx("TOC of the proposal, INDEX of terms"))


def test_anchor_in_a_converted_docx(converter: Converter) -> None:
    data = make_docx("Master agreement", "Signed for the buyer: [[sign:buyer]]",
                     "Signed for the seller: [[sign:seller]]")
    pdf = converter.convert(data, filename="anchors.docx")
    accepted = accept_pdf(pdf, filename="anchors.pdf", max_bytes=10_000_000)
    anchors = find_anchors(accepted.data)
    assert [(a.page_index, a.label) for a in anchors] == [(0, "buyer"), (0, "seller")]
    buyer, seller = anchors
    page = accepted.pages[0]
    for anchor in anchors:
        assert page.x0 < anchor.x0 < anchor.x1 < page.x1
        assert page.y0 < anchor.y0 < anchor.y1 < page.y1
        assert 6 < anchor.y1 - anchor.y0 < 20  # about one line of 11 pt text
    assert seller.y1 < buyer.y0  # the seller's line is below the buyer's


def test_restarts_a_dead_server_and_close_leaves_no_process(tmp_path: Path) -> None:
    data = make_docx("Restart me")
    with Converter(work_dir=tmp_path) as conv:
        # Started from a thread that then ends, as from a worker's thread pool: the server
        # must outlive that thread (PR_SET_PDEATHSIG fires on the forking thread's exit).
        starter = threading.Thread(target=conv.start)
        starter.start()
        starter.join()
        first = conv.server_pid
        assert first is not None
        time.sleep(0.5)
        conv.convert(data, filename="a.docx")
        assert conv.server_pid == first
        os.kill(first, signal.SIGKILL)  # unoserver gone; its LibreOffice is orphaned
        pdf = conv.convert(data, filename="a.docx")
        assert conv.last_mode == "warm" and conv.server_pid not in (None, first)
        assert "Restart me" in pdf_text(pdf)
        assert processes_using(tmp_path)
    assert eventually_none(tmp_path, timeout=5) == []


def test_server_dies_with_its_parent_process(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: kill -9 the Python that owns the converter, nothing stays behind."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from documents.convert import Converter\n"
        "conv = Converter(work_dir=Path(sys.argv[1]))\n"
        "conv.start()\n"
        "print(conv.server_pid, flush=True)\n"
        "time.sleep(120)\n")
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                             stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip().isdigit()
        assert processes_using(tmp_path)
    finally:
        owner.kill()
        owner.wait()
    # unoserver stops LibreOffice on its SIGTERM; on a loaded machine that took over 20 s once.
    assert eventually_none(tmp_path, timeout=60) == []


def test_falls_back_to_cold_when_the_warm_server_cannot_start(tmp_path: Path) -> None:
    with Converter(uno_venv=tmp_path / "no-such-venv", work_dir=tmp_path / "work") as conv:
        pdf = conv.convert(make_docx("Cold but fine"), filename="cold.docx")
        assert conv.last_mode == "cold"
    assert "Cold but fine" in pdf_text(pdf)


def test_cold_conversion_times_out_and_stops_soffice(tmp_path: Path) -> None:
    with pytest.raises(ConversionFailed) as failed:
        convert_cold(make_docx("Slow"), "slow.docx", profile_dir=tmp_path / "profile",
                     timeout=0.3)
    assert "slow.docx took longer than 0.3 s" in failed.value.message
    assert eventually_none(tmp_path, timeout=5) == []


def test_warm_versus_cold_time(converter: Converter, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    data = (DOCX / "python-docx__sct-first-page-hdrftr.docx").read_bytes()
    warm = []
    for _ in range(3):
        started = time.monotonic()
        converter.convert(data, filename="timing.docx")
        warm.append(time.monotonic() - started)
    assert converter.last_mode == "warm"
    started = time.monotonic()
    convert_cold(data, "timing.docx", profile_dir=tmp_path / "profile")
    cold_first = time.monotonic() - started  # includes creating the profile
    started = time.monotonic()
    convert_cold(data, "timing.docx", profile_dir=tmp_path / "profile")
    cold = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[convert] 6-page DOCX: warm {min(warm):.2f}-{max(warm):.2f} s, "
              f"cold {cold:.2f} s (first cold run, new profile: {cold_first:.2f} s), "
              f"warm server start-up {STARTUP['warm']:.2f} s")
