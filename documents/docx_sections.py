"""Appending whole Word documents as sections of another one, with docxcompose.

docxcompose's ``Composer`` copies body content, styles, numbering, images, footnotes and
other referenced parts well, but it is built to merge documents into the *master's* last
section: it skips an appended document's final ``w:sectPr`` (the body-level one), deletes every
``w:headerReference``/``w:footerReference`` it copies, and then patches section types and
header references on that assumption. Appended this way, a contract template loses its page
setup and its footer (and with it, for CC BY templates, the attribution).

Here every appended document stays its own section(s) instead:

- :func:`prepare_section` moves the final ``w:sectPr`` into the document's last paragraph (a
  new empty one if the body ends with a table or already ends a section), so docxcompose
  copies it like any other paragraph; makes the first section start on a new page; drops
  page-number restarts (pages count on through the whole result); and removes comment
  markers (comments are the author's notes, and docxcompose doesn't copy the comments part,
  which would leave dangling references Word repairs).
- :class:`SectionComposer` copies each header/footer part a section refers to (its images
  through the package's de-duplicated image parts, its other relationships, its styles and
  numbering) instead of dropping the reference, and switches off docxcompose's section
  fix-ups.
- :func:`fill_default_references` gives a section that has no default header or footer the
  one passed in, rather than letting it inherit the previous section's; and when any appended
  document had different even-page headers (a document-wide setting), every other section
  its default ones on even pages too.
- :func:`stable_list_ids` replaces the random ``w:nsid`` docxcompose gives each copied list
  with one derived from the list's number, so equal input gives equal bytes.

All functions take python-docx ``Document`` objects and change them in place.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.parts.hdrftr import FooterPart, HeaderPart
from docx.styles import BabelFish
from docxcompose.composer import Composer
from docxcompose.image import ImageWrapper

_R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


class SectionComposer(Composer):  # type: ignore[misc]  # docxcompose has no type hints
    """docxcompose's Composer, keeping the appended documents' sections, headers and footers.

    Append documents that went through :func:`prepare_section`.
    """

    def __init__(self, doc: Any) -> None:
        super().__init__(_QuickStyles(doc))

    def insert(self, index: int, doc: Any, remove_property_fields: bool = True) -> None:
        self._copied: dict[str, str] = {}  # the source's rId -> ours, per appended document
        super().insert(index, doc, remove_property_fields=remove_property_fields)

    def remove_header_and_footer_references(self, doc: Any, element: Any) -> None:
        """Copy each referenced header/footer part instead of dropping the reference."""
        for ref in element.iter(qn("w:headerReference"), qn("w:footerReference")):
            rid = ref.get(qn("r:id"))
            if rid not in self._copied:
                self._copied[rid] = self._copy_story(doc, doc.part.related_parts[rid],
                                                     ref.tag == qn("w:headerReference"))
            ref.set(qn("r:id"), self._copied[rid])

    def _copy_story(self, doc: Any, src: Any, header: bool) -> str:
        element = deepcopy(src.element)
        kind = "header" if header else "footer"
        taken = {str(p.partname) for p in self.pkg.iter_parts()}
        n = next(i for i in range(1, len(taken) + 2) if f"/word/{kind}{i}.xml" not in taken)
        cls = HeaderPart if header else FooterPart
        part = cls(PackURI(f"/word/{kind}{n}.xml"), src.content_type, element, self.pkg)
        rids: dict[str, str] = {}
        for rel in sorted(src.rels.values(), key=lambda r: _rid_number(r.rId)):
            if rel.is_external:
                rids[rel.rId] = part.rels.get_or_add_ext_rel(rel.reltype, rel.target_ref)
            elif rel.reltype == RT.IMAGE:
                image = self.pkg.image_parts._get_by_sha1(rel.target_part.sha1)
                if image is None:
                    image = self.pkg.image_parts._add_image_part(ImageWrapper(rel.target_part))
                rids[rel.rId] = part.relate_to(image, RT.IMAGE)
            else:
                rids[rel.rId] = self.add_relationship(src, part, rel).rId
        for node in element.iter():
            for name, value in node.attrib.items():
                if name.startswith(f"{{{_R_NS}}}") and value in rids:
                    node.set(name, rids[value])
        self.add_styles(doc, element)
        self.add_numberings(doc, element)
        return str(self.doc.part.relate_to(part, RT.HEADER if header else RT.FOOTER))

    def fix_section_types(self, doc: Any) -> None:
        """Off: each appended document ends its own section already."""

    def fix_header_and_footers(self, doc: Any) -> None:
        """Off: headers and footers stay with the sections that refer to them."""


class _StyleIds:
    """What docxcompose reads of each of our styles when it lists them: id and UI name."""

    __slots__ = ("name", "style_id")

    def __init__(self, element: Any) -> None:
        self.style_id = element.get(qn("w:styleId"))
        name = element.find(qn("w:name"))
        raw = name.get(qn("w:val")) if name is not None else None
        self.name = BabelFish.internal2ui(raw) if raw is not None else None


class _QuickStyleList:
    """The master's styles as docxcompose lists them, read again only when the list grew:
    styles are only ever added while composing (a preserved style is a copy with a new
    id), so an unchanged count and last style mean an unchanged list."""

    def __init__(self, styles: Any) -> None:
        self._styles = styles
        self._seen: tuple[int, Any] | None = None
        self._ids: list[_StyleIds] = []

    def __iter__(self) -> Iterator[_StyleIds]:
        found = self._styles.element.findall(qn("w:style"))
        seen = (len(found), found[-1] if found else None)
        if seen != self._seen:
            self._ids, self._seen = [_StyleIds(e) for e in found], seen
        return iter(self._ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._styles, name)


class _QuickStyles:
    """The master document for docxcompose, listing its styles straight from the XML:
    docxcompose lists every style of the growing document for each element it copies, and
    python-docx's style objects made that most of a 40-section proposal's time (then
    building the list itself did, hence its cache)."""

    def __init__(self, document: Any) -> None:
        self._document = document
        self._styles = _QuickStyleList(document.styles)

    @property
    def styles(self) -> _QuickStyleList:
        return self._styles

    def __getattr__(self, name: str) -> Any:
        return getattr(self._document, name)


def prepare_section(document: Any, fallback: Any) -> None:
    """Make ``document`` keep its sections when appended by :class:`SectionComposer`.

    ``fallback`` is a ``w:sectPr`` for a document that has none (its header and footer
    references are not copied: :func:`fill_default_references` gives it the defaults).
    """
    body = document.element.body
    if next(body.iter(qn("w:sectPr")), None) is None:
        page = deepcopy(fallback)
        for ref in page.findall(qn("w:headerReference")) + page.findall(qn("w:footerReference")):
            page.remove(ref)
        body.append(page)
    for node in list(body.iter(qn("w:commentRangeStart"), qn("w:commentRangeEnd"))):
        node.getparent().remove(node)
    for ref in list(body.iter(qn("w:commentReference"))):
        run = ref.getparent()
        run.getparent().remove(run)
    final = body.find(qn("w:sectPr"))
    if final is not None:  # becomes the last paragraph's, so the part keeps its section
        position = body.index(final)
        last = body[position - 1] if position else None
        if last is None or last.tag != qn("w:p") \
                or last.find(f"{qn('w:pPr')}/{qn('w:sectPr')}") is not None:
            last = OxmlElement("w:p")
            final.addprevious(last)
        last.get_or_add_pPr().insert_element_before(final, "w:pPrChange")
    for numbers in body.iter(qn("w:pgNumType")):  # pages count on through the result
        numbers.attrib.pop(qn("w:start"), None)
    first = next(body.iter(qn("w:sectPr")), None)
    if first is not None:  # starts on a new page, whatever its first section says
        for start in first.findall(qn("w:type")):
            first.remove(start)


def fill_default_references(document: Any, header_rid: str, footer_rid: str, *,
                            even_pages: bool = False) -> None:
    """Every section without a default header (footer) gets ``header_rid`` (``footer_rid``).

    With ``even_pages`` (Word's document-wide "different odd and even pages", which one
    appended document needed), every section without an even-page header (footer) gets its
    default one there too, so only the sections that had them look different.
    """
    for sectpr in document.element.body.iter(qn("w:sectPr")):
        for tag, rid in (("w:headerReference", header_rid), ("w:footerReference", footer_rid)):
            refs = {r.get(qn("w:type")): r.get(qn("r:id")) for r in sectpr.findall(qn(tag))}
            if "default" not in refs:
                refs["default"] = rid
                _reference(sectpr, tag, "default", rid)
            if even_pages and "even" not in refs:
                _reference(sectpr, tag, "even", refs["default"])


def _reference(sectpr: Any, tag: str, kind: str, rid: str) -> None:
    ref = OxmlElement(tag, {qn("w:type"): kind, qn("r:id"): rid})
    sectpr.insert(0, ref)  # references come first in a w:sectPr


def stable_list_ids(document: Any) -> None:
    """Each list's ``w:nsid`` derived from its ``abstractNumId``, not random."""
    for anum in document.part.numbering_part.element.findall(qn("w:abstractNum")):
        nsid = anum.find(qn("w:nsid"))
        if nsid is not None:
            seed = f"dealdesk-list-{anum.get(qn('w:abstractNumId'))}".encode()
            nsid.set(qn("w:val"), f"{zlib.crc32(seed):08X}")


def _rid_number(rid: str) -> int:
    digits = re.sub(r"\D", "", rid)
    return int(digits) if digits else 0
