"""Where each signer's signature field goes on an envelope's document.

A signer asks for an explicit page and box, or for the place of a ``[[sign:LABEL]]`` anchor
text, or for nothing (their field is stacked at the bottom of the last page). Placing is pure:
the accepted document's page geometry and its anchors in, a page and box per signer out, or
:class:`PlacementError` naming the signer and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from documents.intake import AcceptedPdf, Anchor

FIELD_W, FIELD_H = 200, 54

Box = tuple[int, int, int, int]


class PlacementError(ValueError):
    """A requested place isn't in the document (a missing anchor, a page out of range)."""


@dataclass(frozen=True)
class FieldRequest:
    """What one signer asked for."""

    name: str
    """The signer's name (for messages)."""
    anchor: str = ""
    """Label of a ``[[sign:LABEL]]`` text in the document."""
    page: int | None = None
    """1-based page of an explicit placement (with ``box``)."""
    box: Box | None = None
    """x1, y1, x2, y2 in PDF points."""


def place_fields(requests: dict[int, FieldRequest], doc: AcceptedPdf,
                 anchors: list[Anchor]) -> dict[int, tuple[int, Box]]:
    """Each request's 0-based page and box: an explicit page and box, else its anchor text
    (just below it, left-aligned; above it when there is no room below), else stacked two
    abreast at the bottom of the last page."""
    out: dict[int, tuple[int, Box]] = {}
    last = doc.page_count - 1
    geo = doc.pages[last]
    slot = 0
    for key, r in requests.items():
        if r.page is not None and r.box is not None:
            if not 1 <= r.page <= doc.page_count:
                raise PlacementError(f"{r.name}: page {r.page} is not in the document "
                                     f"({doc.page_count} pages)")
            out[key] = (r.page - 1, r.box)
            continue
        if r.anchor:
            found = [a for a in anchors if a.label == r.anchor]
            if not found:
                raise PlacementError(f"{r.name}: the document has no [[sign:{r.anchor}]] "
                                     "anchor")
            a = found[0]
            top = int(a.y0) - 4
            if top - FIELD_H < doc.pages[a.page_index].y0:
                top = int(a.y1) + 4 + FIELD_H
            out[key] = (a.page_index, (int(a.x0), top - FIELD_H, int(a.x0) + FIELD_W, top))
            continue
        col, row = slot % 2, slot // 2
        x = int(geo.x0) + 48 + col * (FIELD_W + 24)
        y = int(geo.y0) + 36 + row * (FIELD_H + 12)
        out[key] = (last, (x, y, x + FIELD_W, y + FIELD_H))
        slot += 1
    return out
