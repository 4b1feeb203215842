"""Group membership at the size shops have: adding many customers at once, removing, a page of members.

Why here and not in the panel: the same adds come from the customer list (a selection, or
everything its current filter matches), a CSV of customer numbers or openids and a saved
segment, and a group of 100,000 must not be built by posting one huge form. So every add:
- is idempotent: UNIQUE(group, customer) with INSERT … ON CONFLICT DO NOTHING, so adding
  the same people twice (or a CSV listing someone twice) changes nothing;
- walks its source in id-ordered chunks (keyset, not OFFSET) and commits each chunk in its
  own short transaction, so memory stays flat in the number of customers and the bot's
  writers never wait long for SQLite's write lock;
- leaves out erased customers (nothing may be sent to them any more).

A CSV is checked whole before anything is added (a file that cannot be read names its
line and adds nobody); then each row that names nobody is reported with its line.
The messages here are codes (`Problem.reason`, `MemberFileError.reason`): the panel words them
in the operator's language.
"""

from __future__ import annotations

import csv
import operator
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from itertools import islice
from typing import IO, Iterable, Iterator, Mapping

import peewee

from bot.core import clock
from bot.crm import segments
from bot.core.db import is_postgres, transaction
from bot.core.models import Customer, CustomerGroup, GroupMember, Segment

CHUNK = 1000
MAX_ID = 2**31 - 1  # a customer number fits PostgreSQL's integer
REPORT_LIMIT = 500  # problem rows kept for the report; the rest are only counted

# Header names a CSV may use, by what the column holds (compared case-insensitively).
NUMBER_COLUMNS = ("#", "id", "customer", "customer_id", "number", "编号", "客户编号", "顾客编号")
OPENID_COLUMNS = ("openid", "external_id", "user_id", "userid", "平台用户id", "平台用户 id", "用户id")
CHANNEL_COLUMNS = ("channel", "渠道")


class MemberFileError(ValueError):
    """The CSV as a whole cannot be used; `line` is 1-based (0: the file as a whole)."""

    def __init__(self, line: int, reason: str, detail: str = "") -> None:
        super().__init__(f"line {line}: {reason}{': ' + detail if detail else ''}")
        self.line, self.reason, self.detail = line, reason, detail


@dataclass(frozen=True)
class Problem:
    """A CSV row that added nobody. reason: not_found | ambiguous | erased | not_a_number."""

    line: int
    value: str
    reason: str


@dataclass
class Report:
    """What a bulk add did: `added` new members, `already` members before (or listed twice),
    `skipped` ids that name no customer or an erased one; for a CSV, its problem rows."""

    added: int = 0
    already: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    def note(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < REPORT_LIMIT:
            self.problems.append(problem)


def customer_number(text: str) -> int | None:
    """A customer number as operators write it (`123` or `#123`), or None."""
    digits = text.strip().removeprefix("#")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10 or not 0 < int(digits) <= MAX_ID:
        return None
    return int(digits)


def _group_id(group: CustomerGroup | int) -> int:
    return group if isinstance(group, int) else int(group.id)


def _chunks(values: Iterable[int], size: int) -> Iterator[list[int]]:
    it = iter(values)
    while chunk := list(islice(it, size)):
        yield chunk


def _insert(group_id: int, customer_ids: list[int], report: Report, live: bool = False) -> None:
    """Add the live customers among `customer_ids` (one chunk) in one short transaction;
    `live`: the caller has just selected them as live customers, no need to look again."""
    with transaction():
        found = set(customer_ids) if live else {row[0] for row in Customer.select(Customer.id).where(
            Customer.id.in_(sorted(set(customer_ids))) & Customer.erased_at.is_null()).tuples()}
        added = 0
        if found:
            now = clock.now()
            added = (GroupMember.insert_many([(group_id, cid, now) for cid in sorted(found)],
                                             fields=[GroupMember.group, GroupMember.customer, GroupMember.joined_at])
                     .on_conflict_ignore().as_rowcount().execute())
    named = sum(1 for cid in customer_ids if cid in found)  # a number listed twice counts twice
    report.added += added
    report.already += named - added
    report.skipped += len(customer_ids) - named


def add_ids(group: CustomerGroup | int, customer_ids: Iterable[int], chunk: int = CHUNK) -> Report:
    """Add customers by number (a selection in the customer list)."""
    report = Report()
    for part in _chunks(customer_ids, chunk):
        _insert(_group_id(group), part, report)
    return report


def add_matching(group: CustomerGroup | int, query: peewee.ModelSelect, chunk: int = CHUNK) -> Report:
    """Add every customer `query` selects (a Customer query: the customer list's filter and
    search, a segment), walking it by customer id a chunk at a time."""
    report = Report()
    ids = query.select(Customer.id).where(Customer.erased_at.is_null()).order_by(Customer.id)
    last = 0
    while True:
        part = [row[0] for row in ids.where(Customer.id > last).limit(chunk).tuples()]
        if not part:
            return report
        _insert(_group_id(group), list(dict.fromkeys(part)), report, live=True)
        last = part[-1]


def add_segment(group: CustomerGroup | int, segment: Segment | Mapping[str, object], chunk: int = CHUNK) -> Report:
    """Add everyone a saved segment selects right now (SegmentError when its filter is wrong)."""
    return add_matching(group, segments.query(segment), chunk)


def remove(group: CustomerGroup | int, customer_ids: Iterable[int]) -> int:
    """Take customers out of the group; how many were members."""
    removed = 0
    for part in _chunks(customer_ids, CHUNK):
        with transaction():
            removed += GroupMember.delete().where(
                (GroupMember.group == _group_id(group)) & GroupMember.customer.in_(part)).execute()
    return removed


# --- the members page ----------------------------------------------------------------------


def member_count(group: CustomerGroup | int) -> int:
    return int(GroupMember.select().where(GroupMember.group == _group_id(group)).count())


def members(group: CustomerGroup | int, search: str = "", page: int = 0,
            per_page: int = 50) -> tuple[int, list[tuple[Customer, datetime]]]:
    """One page of the group's members by customer number, newest customers first, as (total
    matching, [(customer, joined_at)]). `search` matches a customer number (`#123` only that;
    `123` also a phone or platform id containing it) or a part of the nickname, name, phone or
    platform id.

    Why this shape: the page walks the UNIQUE(group, customer) index alone and loads just its
    50 customers, so page 2,000 of a 100,000-member group costs what page 1 does; a search
    scans the customers once (like the customer list's) and keeps the members among them."""
    query = GroupMember.select(GroupMember.customer, GroupMember.joined_at).where(
        GroupMember.group == _group_id(group))
    words = search.strip()
    if words:
        wanted = customer_number(words)
        if words.startswith("#"):
            match = Customer.id == (wanted or 0)
        else:
            term = f"%{words}%"
            # PostgreSQL's ILIKE costs 7 times its LIKE: a phone or platform id is matched as
            # written, a name ignores case only when the term has letters with case (not Chinese,
            # not digits). peewee's `%` is GLOB on SQLite, whose LIKE (`**`) ignores case anyway.
            exact = is_postgres()
            caseless = exact and words.lower() == words.upper()
            match = reduce(operator.or_, [
                *(column % term if caseless else column ** term for column in (Customer.nickname, Customer.name)),
                *(column % term if exact else column ** term for column in (Customer.phone, Customer.external_id))])
            if wanted is not None:
                match |= Customer.id == wanted
        query = query.where(GroupMember.customer.in_(Customer.select(Customer.id).where(match)))
        # the count rides along with the page: one scan of the customers, not two
        query = query.select_extend(peewee.fn.COUNT(peewee.SQL("*")).over().alias("total"))
    rows = list(query.order_by(GroupMember.customer.desc()).offset(max(page, 0) * per_page).limit(per_page).tuples())
    if not words:
        total = member_count(group)
    else:
        total = rows[0][2] if rows else query.count() if page > 0 else 0  # past the last page: count apart
    found = {c.id: c for c in Customer.select().where(Customer.id.in_([row[0] for row in rows]))} if rows else {}
    return total, [(found[row[0]], row[1]) for row in rows if row[0] in found]


# --- a CSV of customer numbers or openids -------------------------------------------------------


def _lines(stream: IO[bytes], encoding: str) -> Iterator[str]:
    """The file's lines decoded; MemberFileError names the first line that is not text."""
    for line, raw in enumerate(stream, start=1):
        try:  # a line ends in b"\n", which is never part of a UTF-8 or GB18030 character
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise MemberFileError(line, "not_text") from None
        if "\x00" in text:  # a binary file (an .xlsx is a ZIP) that happened to decode
            raise MemberFileError(line, "binary")
        yield text.removeprefix("\ufeff") if line == 1 else text


def _rows(stream: IO[bytes], encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each non-blank row; MemberFileError for what the CSV reader refuses."""
    stream.seek(0)
    reader = csv.reader(_lines(stream, encoding), strict=True)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise MemberFileError(reader.line_num, "bad_csv", str(exc)) from None
        if any(c.strip() for c in cells):
            yield reader.line_num, [c.strip() for c in cells]


def _encoding(stream: IO[bytes]) -> str:
    """UTF-8 (with or without Excel's BOM), else GB18030 (Excel's CSV on a Chinese Windows)."""
    first_error: MemberFileError | None = None
    for encoding in ("utf-8", "gb18030"):
        try:
            for _ in _rows(stream, encoding):
                pass
        except MemberFileError as exc:
            if exc.reason != "not_text":
                raise
            first_error = first_error or exc
            continue
        return encoding
    assert first_error is not None
    raise first_error


@dataclass(frozen=True)
class _Layout:
    """Which cell holds what; without a header, one value a row in the first column."""

    header: bool
    number: int | None = None
    openid: int | None = None
    channel: int | None = None


def _layout(cells: list[str]) -> _Layout:
    names = [c.lower().replace("\ufeff", "").strip() for c in cells]

    def find(known: tuple[str, ...]) -> int | None:
        return next((i for i, n in enumerate(names) if n in known), None)

    number, openid, channel = find(NUMBER_COLUMNS), find(OPENID_COLUMNS), find(CHANNEL_COLUMNS)
    if number is None and openid is None:
        if channel is not None:
            raise MemberFileError(1, "no_id_column")
        return _Layout(header=False)
    return _Layout(header=True, number=number, openid=openid, channel=channel)


@dataclass(frozen=True)
class _Wanted:
    line: int
    value: str
    number: int | None  # a customer number, or None for an openid
    channel: str


def _wanted(line: int, cells: list[str], layout: _Layout) -> _Wanted | Problem | None:
    def cell(index: int | None) -> str:
        return cells[index] if index is not None and index < len(cells) else ""

    channel = cell(layout.channel)
    if not layout.header:
        value = cells[0]
        if not value:
            return None
        digits = value.removeprefix("#")
        if digits.isascii() and digits.isdigit():  # a customer number (one too big names nobody)
            return _Wanted(line, value, customer_number(value) or 0, "")
        return _Wanted(line, value, None, "")
    if cell(layout.number):
        value = cell(layout.number)
        if customer_number(value) is None:
            return Problem(line, value, "not_a_number")
        return _Wanted(line, value, customer_number(value), channel)
    if cell(layout.openid):
        return _Wanted(line, cell(layout.openid), None, channel)
    return None


def _resolve(wanted: list[_Wanted], report: Report, channels: list[str]) -> list[int]:
    """The customer number each wanted row names; the others reported. An openid is looked
    up under each of `channels` (the UNIQUE(channel, external_id) index serves it)."""
    numbers = {w.number for w in wanted if w.number is not None}
    openids = {w.value for w in wanted if w.number is None}
    by_number: dict[int, bool] = {}  # number -> erased
    if numbers:
        for cid, erased in Customer.select(Customer.id, Customer.erased_at).where(Customer.id.in_(list(numbers))).tuples():
            by_number[cid] = erased is not None
    by_openid: dict[str, list[tuple[int, str, bool]]] = {}
    if openids:
        rows = Customer.select(Customer.id, Customer.channel, Customer.external_id, Customer.erased_at).where(
            Customer.channel.in_(channels) & Customer.external_id.in_(list(openids))).tuples()
        for cid, channel, external_id, erased in rows:
            by_openid.setdefault(external_id, []).append((cid, channel, erased is not None))
    found: list[int] = []
    for w in wanted:
        if w.number is not None:
            matches = [(w.number, "", by_number[w.number])] if w.number in by_number else []
        else:
            matches = [m for m in by_openid.get(w.value, []) if not w.channel or m[1] == w.channel]
        if not matches:
            report.note(Problem(w.line, w.value, "not_found"))
        elif len(matches) > 1:
            report.note(Problem(w.line, w.value, "ambiguous"))
        elif matches[0][2]:
            report.note(Problem(w.line, w.value, "erased"))
        else:
            found.append(matches[0][0])
    return found


def add_csv(group: CustomerGroup | int, stream: IO[bytes], chunk: int = CHUNK) -> Report:
    """Add the customers a CSV names: one customer number (`123` or `#123`) or openid a row,
    or a header naming the columns (customer_id / 客户编号, openid / external_id, and
    channel / 渠道 to tell apart one openid on two channels). Without a header a value of
    digits is a customer number and anything else an openid. `stream` is the uploaded
    file, read twice (it must be seekable): first checked whole (MemberFileError names the
    line, nothing is added), then added a chunk at a time."""
    encoding = _encoding(stream)
    layout: _Layout | None = None
    report = Report()
    batch: list[_Wanted] = []
    channels = [row[0] for row in Customer.select(Customer.channel).distinct().tuples()]

    def flush() -> None:
        ids = _resolve(batch, report, channels)
        if ids:
            _insert(_group_id(group), ids, report)
        batch.clear()

    for line, cells in _rows(stream, encoding):
        if layout is None:
            layout = _layout(cells)
            if layout.header:
                continue
        wanted = _wanted(line, cells, layout)
        if isinstance(wanted, Problem):
            report.note(wanted)
        elif wanted is not None:
            batch.append(wanted)
            if len(batch) >= chunk:
                flush()
    if layout is None:
        raise MemberFileError(0, "empty")
    flush()
    return report
