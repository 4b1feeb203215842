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


def test_the_terminal_chat_says_how_to_come_back_as_the_same_visitor(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from adapters import web_client

    class Client:
        user_id, token = "v_1234", "signed-token"

        def start(self) -> None: ...

        def welcome(self) -> dict:
            return {"text": "您好", "cards": []}

        def send(self, text: str) -> dict:
            return {"replies": [{"text": "48小时内发货", "cards": []}]}

        def poll(self) -> list:
            return []

    monkeypatch.setattr(web_client, "typed_lines", lambda: iter(["发货要多久"]))
    web_client.run_terminal_chat(Client())  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "--user-id v_1234 --token signed-token" in out and "48小时内发货" in out
