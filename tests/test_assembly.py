"""Proposal assembly: every hard DOCX case and the contract templates composed into one
proposal, counted part by part, converted by the real (warm) LibreOffice and read back with
pdftotext; the anchors found and placed by the envelope code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import subprocess
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import pytest
from pypdf import PdfReader

from documents import sandbox
from documents.assembly import (
    SIGNATURE_SPACE,
    AssemblyError,
    BomRow,
    Cover,
    DocLine,
    Part,
    Signer,
    Totals,
    assemble,
    assemble_isolated,
    bill_of_materials,
    pricing_table,
    section,
)
from documents.convert import DEFAULT_UNO_VENV, Converter
from documents.intake import accept_pdf, find_anchors
from documents.placement import FieldRequest, place_fields
from documents.signing import FieldSpec, prepare_fields
from tests.test_convert import zip_of

FIXTURES = Path(__file__).parent / "fixtures"
HARD = sorted((FIXTURES / "docx_hard").glob("*.docx"))
TEMPLATES = sorted((FIXTURES / "contract_templates").glob("*.docx"))
NBSP = "\u00a0"

needs_libreoffice = pytest.mark.skipif(
    not (DEFAULT_UNO_VENV / "bin" / "python").exists(),
    reason="no .venv-uno: run scripts/bootstrap.sh")

COVER = Cover(customer="Globex Corporation", title="Workstations for the design team",
              number="Q-12 v2", valid_until=dt.date(2024, 5, 31), prepared_by="Ines Ortiz",
              issued=dt.date(2024, 5, 1), seller="Acme Inc.")
SIGNERS = [Signer("buyer", "Hank Scorpio", "Chief Executive Officer", "Globex Corporation"),
           Signer("seller", "Ines Ortiz", "Account Executive", "Acme Inc.")]
LINES = [  # list unit, net unit, net total in cents
    DocLine(1, "WS-9", "Workstation WS-9", 10, "each", 249_900, 218_663, 2_186_630, 12.5, []),
    DocLine(2, "CARE-3Y", "Care plan, 3 years", 10, "seat/month", 1_250, 1_000, 10_000, 20.0,
            []),
    DocLine(3, "RACK-42", "Server rack, 42U", 3, "each", 123_456_789, 111_111_110, 333_333_330,
            10.0, []),
]
TOTALS = Totals(list_total=374_894_867, net_total=335_529_960)
AMOUNTS = ["USD 2,499.00", "USD 2,186.63", "USD 21,866.30", "USD 12.50", "USD 10.00",
           "USD 100.00", "USD 1,234,567.89", "USD 1,111,111.10", "USD 3,333,333.30",
           "USD 3,748,948.67", "USD 3,355,299.60"]
BOM = [BomRow(0, "WS-9", "Workstation WS-9", 10), BomRow(1, "WS-9-MB", "Mainboard", 10),
       BomRow(2, "CPU-X24", "CPU, 24 cores", 10)]
# A sentence only each template has, and the attribution its footer carries (CC BY 4.0).
TEMPLATE_TEXT = {
    "bonterms-mutual-nda": ("By executing this Cover Page, the parties enter into the Bonterms "
                            "Mutual NDA (Version 1.0)", ""),
    "common-paper-mutual-nda": ("This Mutual Non-Disclosure Agreement (the “MNDA”) consists of",
                                "Common Paper Mutual Non-Disclosure Agreement (Version 1.0) "
                                "free to use under CC BY 4.0."),
    "common-paper-order-form": ("The key business terms of this Order Form are as follows",
                                "Common Paper Cloud Service Agreement (Version 2.1) free to use "
                                "under CC BY 4.0."),
}
# Header and footer texts of the hard cases, one per section or page kind.
HARD_HEADERS = ["Header Section 1", "Header Section 2", "Footer Section 1", "Footer Section 2",
                "Default (odd, primary) Header", "First Page Header (section 2)"]


def parts() -> list[Part]:
    bom = bill_of_materials(BOM)
    assert bom is not None
    return ([section(p.stem, p.read_bytes()) for p in HARD + TEMPLATES]
            + [pricing_table(LINES, "USD", TOTALS), bom])


@dataclasses.dataclass(frozen=True)
class Proposal:
    docx: bytes
    pdf: bytes
    pages: list[str]  # pdftotext -layout, one page each


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converter]:
    with Converter(work_dir=tmp_path_factory.mktemp("lo")) as conv:
        yield conv


@pytest.fixture(scope="module")
def proposal(converter: Converter) -> Proposal:
    data = assemble(COVER, parts(), SIGNERS)
    pdf = converter.convert(data, filename="proposal.docx")
    assert converter.last_mode == "warm"  # the warm converter updates the contents' pages
    return Proposal(data, pdf, page_texts(pdf))


# -- 1. nothing of the hard cases is lost ---------------------------------------------------


def counts(data: bytes) -> Counter[str]:
    """Images, numbered paragraphs, sections and header/footer parts of a DOCX."""
    out: Counter[str] = Counter()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            story = re.fullmatch(r"word/(document|header\d*|footer\d*)\.xml", name)
            if not story:
                continue
            xml = z.read(name).decode()
            out["images"] += len(re.findall(r"<a:blip [^>]*r:embed=", xml))
            out["images"] += len(re.findall(r"<v:imagedata [^>]*r:id=", xml))
            if story.group(1) == "document":
                out["numbered"] += len(re.findall(r"<w:numPr>", xml))
                out["sections"] += len(re.findall(r"<w:sectPr[ >]", xml))
            else:
                out[story.group(1).rstrip("0123456789")] += 1
    return out


@needs_libreoffice
def test_composing_keeps_images_lists_sections_headers_and_footers(proposal: Proposal) -> None:
    inputs = sum((counts(p.read_bytes()) for p in HARD + TEMPLATES), Counter())
    generated = Counter(sections=4, header=1, footer=1)  # cover, pricing, BoM, signatures
    result = counts(proposal.docx)
    assert inputs["images"] >= 4 and inputs["numbered"] >= 40 and inputs["sections"] >= 18
    for what in ("images", "numbered", "sections", "header", "footer"):
        assert result[what] >= inputs[what] + generated[what], what
    # Every numbered paragraph's list is defined, and every list's abstract definition.
    with zipfile.ZipFile(io.BytesIO(proposal.docx)) as z:
        body, numbering = (z.read(f"word/{n}.xml").decode() for n in ("document", "numbering"))
    used = set(re.findall(r'<w:numId w:val="(\d+)"', body))
    nums = dict(re.findall(r'<w:num w:numId="(\d+)"[^>]*>\s*<w:abstractNumId w:val="(\d+)"',
                           numbering))
    abstract = set(re.findall(r'<w:abstractNum [^>]*w:abstractNumId="(\d+)"', numbering))
    assert len(used) >= 5 and len(nums) >= len(used - {"0"})
    assert used - {"0"} <= set(nums) and set(nums.values()) <= abstract
    # Every section of the result still refers to header/footer parts that exist.
    document = docx.Document(io.BytesIO(proposal.docx))
    assert len(document.sections) == result["sections"]
    for sec in document.sections:
        assert not sec.header.is_linked_to_previous and not sec.footer.is_linked_to_previous
    assert len(document.inline_shapes) >= 3  # python-docx's inline-shape fixture's pictures
    text = "\n".join(proposal.pages)
    for line in HARD_HEADERS:
        assert line in text, line
    # Different odd and even pages, as python-docx's fixture asks: its one page shows the
    # header for its side; every other section shows its default header on both sides.
    assert document.settings.odd_and_even_pages_header_footer
    odd_even = [i + 1 for i, page in enumerate(proposal.pages)
                if "python-docx__doc-odd-even-hdrs" in page and "Contents" not in page]
    assert len(odd_even) == 1
    side = "Even page header." if odd_even[0] % 2 == 0 else "Odd page header."
    assert side in proposal.pages[odd_even[0] - 1]
    assert all(f"Page {n} of " in proposal.pages[n - 1] for n in (1, 2, len(proposal.pages)))
    # Pages count on through the whole proposal and the PDF opens.
    assert len(PdfReader(io.BytesIO(proposal.pdf)).pages) == len(proposal.pages) > 30


# -- 2. contract templates as sections --------------------------------------------------------


@needs_libreoffice
def test_contract_templates_keep_their_text_and_attribution(proposal: Proposal) -> None:
    text = " ".join(" ".join(proposal.pages).split())
    for name, (sentence, attribution) in TEMPLATE_TEXT.items():
        assert sentence in text, name
        if attribution:
            pages = [p for p in proposal.pages if attribution in " ".join(p.split())]
            assert len(pages) >= 1, name
    order_form = [p for p in proposal.pages if "ORDER FORM" in p]
    attribution = TEMPLATE_TEXT["common-paper-order-form"][1]
    assert order_form and all(attribution in " ".join(p.split()) for p in order_form)


# -- 3. cover, contents, page numbers -----------------------------------------------------------


@needs_libreoffice
def test_cover_contents_and_page_numbers(proposal: Proposal) -> None:
    pages, n = proposal.pages, len(proposal.pages)
    cover = pages[0]
    for text in ("Globex Corporation", "Workstations for the design team", "Q-12 v2",
                 "Valid until: 31 May 2024", "Prepared by: Ines Ortiz", "Issued: 1 May 2024"):
        assert text in cover, text
    assert f"Page 1 of {n}" in cover and f"Page 2 of {n}" in pages[1]
    assert f"Page {n} of {n}" in pages[-1]

    contents = pages[1]
    assert contents.lstrip().startswith("Contents")
    entries = dict(re.findall(r"^\s*(\S.*?)\s*\.{3,}\s*(\d+)\s*$", contents, re.M))
    titles = [p.stem for p in HARD + TEMPLATES] + ["Pricing", "Bill of materials", "Signatures"]
    own_footer = {p.stem for p in HARD + TEMPLATES if counts(p.read_bytes())["footer"]}
    for title in titles:
        assert title in entries, title
        page = pages[int(entries[title]) - 1]  # where the entry says the section starts
        assert title in page, title
        if title not in own_footer:
            assert f"Page {entries[title]} of {n}" in page, title
    starts = [int(entries[t]) for t in titles]
    assert starts == sorted(starts)
    # A part with a footer of its own, the part after it, and the generated parts start on
    # a new page; plain sections read on after each other (some share a page).
    for before, title, start in zip(titles, titles[1:], starts[1:], strict=False):
        if title in own_footer or before in own_footer or title in titles[-3:]:
            assert start > int(entries[before]), (before, title)
    assert len(set(starts)) < len(starts)




# -- 4. pricing ------------------------------------------------------------------------------


@needs_libreoffice
def test_pricing_amounts_stay_whole_and_no_bom_means_no_table(converter: Converter,
                                                               proposal: Proposal) -> None:
    assert bill_of_materials([]) is None
    data = assemble(COVER, [pricing_table(LINES, "USD", TOTALS)], SIGNERS)
    document = docx.Document(io.BytesIO(data))
    assert len(document.tables) == 2  # the lines and the totals, no bill of materials
    assert all("Bill of materials" not in p.text for p in document.paragraphs)
    header = [c.text for c in document.tables[0].rows[0].cells]
    assert header[3:7] == ["Unit", "List price per unit", "Disc.", "Net price per unit"]
    assert all(NBSP in a for a in (document.tables[0].rows[1].cells[4].text,
                                   document.tables[1].rows[2].cells[1].text))

    pdf = converter.convert(data, filename="pricing.docx")
    text = "\n".join(page_texts(pdf))
    assert "Bill of materials" not in text
    lines = [" ".join(line.replace(NBSP, " ").split()) for line in text.splitlines()]
    for amount in AMOUNTS:  # each amount whole on one line: never wrapped
        assert any(amount in line for line in lines), amount
    assert "USD 393,649.07 (10.5%)" in "\n".join(lines)  # the discount and its share
    # The same table inside the big proposal, BoM included there.
    big = [" ".join(line.split()) for page in proposal.pages for line in page.splitlines()]
    for amount in AMOUNTS:
        assert any(amount in line for line in big), amount
    assert any(line.startswith("CPU-X24") or " CPU-X24 " in f" {line} " for line in big)


# -- 5. signature anchors ------------------------------------------------------------------------


@needs_libreoffice
def test_signature_anchors_are_found_and_their_fields_cover_no_text(
        proposal: Proposal) -> None:
    accepted = accept_pdf(proposal.pdf, filename="proposal.pdf", max_bytes=50 * 2**20)
    anchors = find_anchors(accepted.data)
    assert sorted(a.label for a in anchors) == ["buyer", "seller"]
    assert all(a.page_index == accepted.page_count - 1 for a in anchors)
    placed = place_fields({i: FieldRequest(s.name, anchor=s.key) for i, s in enumerate(SIGNERS)},
                          accepted, anchors)
    # The envelope's next step creates the fields there; read their rectangles back.
    prepared = prepare_fields(accepted.data, [FieldSpec(f"sig-{SIGNERS[i].key}", page, box)
                                              for i, (page, box) in placed.items()])
    annots: Any = PdfReader(io.BytesIO(prepared)).pages[-1]["/Annots"]
    rects = {str(a.get_object()["/T"]): tuple(round(float(v)) for v in a.get_object()["/Rect"])
             for a in annots}
    assert rects == {f"sig-{SIGNERS[i].key}": box for i, (_, box) in placed.items()}
    words = bbox_words(prepared, accepted.page_count - 1)
    height = accepted.pages[-1].media_box[3]
    for i, (page, (x1, y1, x2, y2)) in placed.items():
        assert page == accepted.page_count - 1
        anchor = next(a for a in anchors if a.label == SIGNERS[i].key)
        assert y2 < anchor.y0 and anchor.y0 - y1 <= SIGNATURE_SPACE.pt  # just below it
        for text, (wx0, wy0, wx1, wy1) in words:  # pdftotext: origin top left
            uy0, uy1 = height - wy1, height - wy0
            overlaps = wx0 < x2 and wx1 > x1 and uy0 < y2 and uy1 > y1
            assert not overlaps, (SIGNERS[i].key, text)
        name_line = next(b for t, b in words if t == SIGNERS[i].name.split()[-1])
        assert height - name_line[1] < y1  # the signer's name is under the field


# -- 6. stable bytes, bad parts ------------------------------------------------------------------


def test_equal_input_gives_equal_bytes() -> None:
    chosen = [section(p.stem, p.read_bytes()) for p in HARD if "numbering" in p.stem
              or "header" in p.stem or "hdr" in p.stem or "shape" in p.stem]
    chosen.append(pricing_table(LINES, "USD", TOTALS))
    first = assemble(COVER, chosen, SIGNERS)
    assert first == assemble(COVER, chosen, SIGNERS)
    assert first != assemble(dataclasses.replace(COVER, customer="Initech"), chosen, SIGNERS)
    # Characters XML can't hold (pasted from elsewhere) are dropped, not a crash.
    odd = dataclasses.replace(COVER, title="Work\x0bstations", prepared_by="Ines\x01 Ortiz")
    props = docx.Document(io.BytesIO(assemble(odd, chosen, SIGNERS))).core_properties
    assert (props.title, props.author) == ("Workstations", "Ines Ortiz")
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_part_without_section_properties_still_gets_its_own_section() -> None:
    bare = docx.Document()
    bare.add_paragraph("A part written by a tool that leaves out w:sectPr.")
    bare.element.body.remove(bare.element.body.find(
        "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}sectPr"))
    out = io.BytesIO()
    bare.save(out)
    data = assemble(COVER, [section("Bare", out.getvalue()),
                            section("Terms", TEMPLATES[0].read_bytes())], SIGNERS)
    document = docx.Document(io.BytesIO(data))
    # cover, the bare part, the template's one section, signatures: each its own section
    assert len(document.sections) == 4
    bare_section = document.sections[1]
    assert (bare_section.page_width, bare_section.page_height) == (
        document.sections[0].page_width, document.sections[0].page_height)  # A4 like ours
    assert "Acme Inc." in "".join(p.text for p in bare_section.footer.paragraphs)


ENCRYPTED = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
"""The compound-file header that password-protected OOXML (an EncryptedPackage) starts with."""


@pytest.mark.parametrize(("data", "says"), [
    (HARD[0].read_bytes()[:4000], "damaged"),
    (ENCRYPTED, "password-protected"),
    (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "not a Word document"),
    (zip_of({"xl/workbook.xml": b"<workbook/>"}), "not a Word document"),
    (zip_of({"word/document.xml": b"<not-ooxml", "[Content_Types].xml": b"<Types/>"}),
     "can't be opened as a Word document"),
    (b"", "empty"),
])
def test_a_bad_part_is_named(data: bytes, says: str) -> None:
    good = section("Terms", TEMPLATES[0].read_bytes())
    with pytest.raises(AssemblyError) as caught:
        assemble(COVER, [good, section("Security annex", data)], SIGNERS)
    assert caught.value.part == "Security annex"
    assert "Security annex" in str(caught.value) and says in str(caught.value)


def test_isolated_assembly_gives_the_same_bytes_and_errors() -> None:
    chosen = [section(p.stem, p.read_bytes()) for p in TEMPLATES]
    assert assemble_isolated(COVER, chosen, SIGNERS) == assemble(COVER, chosen, SIGNERS)
    with pytest.raises(AssemblyError) as caught:
        assemble_isolated(COVER, [*chosen, section("Annex", ENCRYPTED)], SIGNERS)
    assert caught.value.part == "Annex" and "password-protected" in str(caught.value)
    with pytest.raises(AssemblyError, match="took longer than the time limit") as over:
        assemble_isolated(COVER, chosen, SIGNERS, limits=sandbox.Limits(seconds=0.05))
    assert over.value.part == "proposal"


def test_signer_keys_must_be_anchor_labels() -> None:
    with pytest.raises(AssemblyError, match="lower-case letters") as caught:
        assemble(COVER, [], [Signer("Buyer 1", "Hank Scorpio", "CEO", "Globex")])
    assert caught.value.part == "signatures"


# -- helpers ---------------------------------------------------------------------------------


def page_texts(pdf: bytes) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", "-", "-"], input=pdf,
                         capture_output=True, check=True, timeout=60).stdout.decode()
    return out.split("\f")[:-1]


def bbox_words(pdf: bytes, page_index: int) -> list[tuple[str, tuple[float, ...]]]:
    page = page_index + 1
    xml = subprocess.run(["pdftotext", "-bbox", "-f", str(page), "-l", str(page), "-", "-"],
                         input=pdf, capture_output=True, check=True, timeout=60).stdout.decode()
    return [(m.group(5), tuple(float(m.group(i)) for i in range(1, 5))) for m in re.finditer(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>',
        xml)]
