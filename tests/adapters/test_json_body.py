"""The one JSON reader of the HTTP APIs (adapters/json_body.py): where its limits lie."""

import json

import pytest

from adapters.json_body import MAX_DEPTH, BadJson, parse_object


def test_what_the_limits_let_through() -> None:
    deepest = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)  # the value itself is the last level
    data = parse_object(f'{{"a": {deepest}, "lo": {-(2**63)}, "hi": {2**63 - 1}, "f": 1.5e308}}'.encode())
    assert data["hi"] == 2**63 - 1 and data["lo"] == -(2**63)
    # a surrogate pair escaped in JSON is one character (an emoji), not a lone surrogate
    assert parse_object(b'{"text": "\\ud83d\\ude00 \\u4f60\\u597d\\t\\n"}') == {"text": "😀 你好\t\n"}


@pytest.mark.parametrize("raw, field", [
    ('{"a": ' + "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "}", "a" + "[0]" * MAX_DEPTH),
    ('{"n": ' + str(2**63) + "}", "n"),
    ('{"n": ' + str(-(2**63) - 1) + "}", "n"),
    ('{"n": -Infinity}', "n"),
    ('{"x": {"k\\u0000": 1}}', "x.'k\\x00'"),
    ('{"x": ["\\udc00"]}', "x[0]"),
])
def test_what_the_limits_refuse(raw: str, field: str) -> None:
    with pytest.raises(BadJson) as refused:
        parse_object(raw.encode())
    assert refused.value.field == field


def test_a_refusal_message_is_ascii_json_even_when_it_quotes_the_input() -> None:
    with pytest.raises(BadJson) as refused:
        parse_object('{"\\ud800": 1}'.encode())
    json.dumps(str(refused.value), ensure_ascii=False).encode("utf-8")  # would raise on a raw surrogate
