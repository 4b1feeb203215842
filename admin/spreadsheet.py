"""CSV cells a spreadsheet will not run: the one helper every CSV the panel writes goes through.

Why: Excel, LibreOffice and Google Sheets take a cell that begins with `=`, `+`, `-` or `@` (and,
in some of them, a tab or a carriage return before one) as a formula. A customer's question
`=HYPERLINK("http://evil", "点我")` saved as an FAQ phrasing would run in the operator's
spreadsheet when the FAQ export is opened (issue 23). Such a cell is written with a leading
apostrophe, which spreadsheets show as text and do not display; `restore` takes it off again
so the panel's importer reads its own exports back unchanged. A cell that itself begins with
an apostrophe gets one more, so every value survives the round trip.
"""

from __future__ import annotations

from typing import Any

RISKY = ("=", "+", "-", "@", "\t", "\r")
_MARK = "'"


def neutralise(cell: Any) -> Any:
    """A text cell safe to open in a spreadsheet (`'` before a risky first character);
    numbers, dates and None pass unchanged."""
    if isinstance(cell, str) and cell.startswith((*RISKY, _MARK)):
        return _MARK + str(cell)  # str(): a Markup value must not escape the mark
    return cell


def restore(cell: str) -> str:
    """The value `neutralise` was given: one leading `'` off when a risky character (or
    another `'`) follows it; any other cell unchanged."""
    if cell.startswith(_MARK) and cell[1:2] and cell[1:].startswith((*RISKY, _MARK)):
        return cell[1:]
    return cell
