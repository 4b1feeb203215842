"""Reading a JSON request body for the HTTP APIs (the web chat, the order API): one parser, with limits.

Why one place, and why these limits: whatever an API accepts is later encoded, indexed and
stored, so what cannot be must be refused here, with a 400 that says what is wrong, and not
fail deeper down as a 500 (or be stored broken). The body must be:
- UTF-8, a JSON object, no larger than the server's `max_body_bytes` (413 otherwise);
- nested at most MAX_DEPTH levels (Python's parser recurses: 50,000 `[` raise RecursionError);
- without NaN/Infinity (not JSON), a float beyond float range (`1e999` would be inf), or an
  integer beyond 64 bits (no database column holds it);
- without a duplicate key (two parsers could read different values from the same body);
- without a lone surrogate (`"\\ud800"` is valid JSON, but no UTF-8 encoder and no database
  accepts it) or a NUL character (PostgreSQL text cannot hold it), in any key or value.
Each refusal is a `BadJson` naming where it is (`text`, `items[0].name`, or `body`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

MAX_DEPTH = 16
INT_RANGE = (-(2**63), 2**63 - 1)
JSON_TYPES = ("application/json",)


class BadJson(ValueError):
    """A body refused before anything was stored; `field` says where (`body` for the whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, checked as the module docstring says; raises BadJson."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson("body", f"not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_int=_int, object_pairs_hook=_object)
    except RecursionError:
        raise BadJson("body", f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise BadJson("body", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadJson("body", "must be a JSON object")
    check_tree(data)
    return data


async def read_body(request: web.Request) -> bytes:
    """The raw body; over the server's `max_body_bytes`, a 413 that says so in JSON."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise json_error(413, "body: larger than this server accepts (its server.max_body_bytes)") from exc


async def read_object(request: web.Request) -> dict[str, Any]:
    """A JSON API's body: the Content-Type must say JSON (415), then `parse_object` (400)."""
    if request.content_type not in JSON_TYPES:
        raise json_error(415, f"Content-Type must be application/json, not {request.content_type}")
    raw = await read_body(request)
    try:
        return parse_object(raw)
    except BadJson as exc:
        raise json_error(400, str(exc)) from None


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 403: web.HTTPForbidden, 404: web.HTTPNotFound, 415: web.HTTPUnsupportedMediaType}


def json_error(status: int, message: str) -> web.HTTPException:
    """An HTTP error whose body is `{"error": message}` (ASCII JSON: a message may quote input)."""
    body = json.dumps({"error": message})
    if status == 413:
        return web.HTTPRequestEntityTooLarge(0, text=body, content_type="application/json")
    return _ERRORS[status](text=body, content_type="application/json")


def check_tree(data: Any) -> None:
    """Walk a parsed document without recursion: depth, and every key and string value."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadJson(path or "body", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, str):
            check_text(value, path or "body")
        elif isinstance(value, (int, float, _Huge)) and not isinstance(value, bool):
            check_number(value, path or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{_printable(key)}" if path else _printable(key)
                check_text(key, where, what="key")
                stack.append((item, where, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def check_text(value: str, field: str, what: str = "text") -> None:
    """Refuse a string no UTF-8 encoder or database takes: a lone surrogate, or NUL."""
    if "\x00" in value:
        raise BadJson(field, f"the {what} contains a NUL character (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadJson(field, f"the {what} contains a lone surrogate ({ascii(value[exc.start])[1:-1]}): "
                                 "not valid Unicode text") from None


def check_number(value: "int | float | _Huge", field: str) -> None:
    """Refuse what no database column holds: NaN/Infinity (not JSON), 1e999 (inf), beyond 64 bits."""
    if isinstance(value, float) and math.isnan(value):
        raise BadJson(field, "NaN is not JSON")
    if isinstance(value, float) and math.isinf(value):
        raise BadJson(field, "beyond the range of a double (Infinity is not JSON)")
    if isinstance(value, _Huge) or (isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]):
        digits = str(value)
        raise BadJson(field, f"an integer beyond 64 bits ({digits[:24]}{'…' if len(digits) > 24 else ''})")


class _Huge:
    """An integer literal too long to be worth converting (a 64-bit one has at most 20 characters)."""

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __str__(self) -> str:
        return self.digits


def _printable(key: str) -> str:
    """A key as it may appear in an error message (a bad key is shown escaped)."""
    return key if key.isidentifier() and key.isascii() else ascii(key)


def _int(digits: str) -> "int | _Huge":
    return int(digits) if len(digits) <= 20 else _Huge(digits)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise BadJson(_printable(duplicate), "the key appears twice in one object")
    return data
