from adapters.terminal import typed_lines


def test_typed_lines_skip_blanks_and_stop_at_quit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    answers = iter(["发货要多久", "   ", "转人工", "/quit", "never read"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert list(typed_lines()) == ["发货要多久", "转人工"]


def test_typed_lines_stop_at_end_of_input(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    assert list(typed_lines()) == []
