from pathlib import Path

import pytest

from bot.core.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kefu.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(None, env={})
    assert config.server.port == 8080
    assert config.database_url.startswith("sqlite:///")
    assert [c.name for c in config.channels] == ["web"]


def test_file_values_and_env_reference(tmp_path: Path) -> None:
    path = write(tmp_path, """
[server]
port = 9001
[database]
url = "${DB_URL}"
[[channels]]
name = "mp"
kind = "wechat_mp"
token = "${MP_TOKEN:-tok}"
app_secret = "${MP_SECRET}"
""")
    config = load_config(path, env={"DB_URL": "postgresql://u@h/db", "MP_SECRET": "s3"})
    assert config.server.port == 9001
    assert config.database_url == "postgresql://u@h/db"
    assert config.channels[0].token == "tok" and config.channels[0].app_secret == "s3"


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9001\n[[channels]]\nname = "web"\nkind = "web"\n')
    config = load_config(path, env={"KEFU_SERVER_PORT": "9100", "KEFU_DATABASE_URL": "sqlite:///x.db",
                                    "KEFU_CHANNELS_WEB_SECRET": "abc"})
    assert config.server.port == 9100
    assert config.database.url == "sqlite:///x.db"
    assert config.channels[0].secret == "abc"


def test_kefu_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[faq]\nthreshold = 0.7\n")
    assert load_config(None, env={"KEFU_CONFIG": str(path)}).faq.threshold == 0.7


@pytest.mark.parametrize("text, key, words", [
    ("[server]\nport = 'abc'\n", "server.port", "whole number"),
    ("[server]\nprot = 1\n", "server.prot", "unknown key"),
    ("[faq]\nthreshold = 3\n", "faq.threshold", "between 0 and 1"),
    ("[database]\nurl = 'mysql://x'\n", "database.url", "sqlite"),
    ("[[channels]]\nname = 'a'\nkind = 'telegram'\n", "channels[0].kind", "not one of"),
    ("[[channels]]\nname = 'a'\nkind = 'wechat_mp'\n", "channels[0].token", "token"),
    ("[[channels]]\nname = 'kf'\nkind = 'wechat_kf'\ncorp_id = 'ww1'\ntoken = 't'\nencoding_aes_key = 'k'\n",
     "channels[0].open_kfid", "open_kfid"),
    ("[[channels]]\nkind = 'web'\n", "channels[0].name", "missing"),
    ("[server]\nport = 8080\n[server\n", "<syntax>", "TOML"),
    ("[server]\nevent_loop = 'tokio'\n", "server.event_loop", "uvloop or asyncio"),
    ("[database]\nurl = '${NOPE_NOT_SET}'\n", "database.url", "NOPE_NOT_SET"),
])
def test_bad_config_names_key_and_file(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == key
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_example_config_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[3] / "config.example.toml"
    env = {"KEFU_WEB_SECRET": "w", "KEFU_MP_TOKEN": "t", "KEFU_MP_APP_ID": "a", "KEFU_MP_APP_SECRET": "s",
           "KEFU_MP_AES_KEY": "k" * 43, "KEFU_ADMIN_SECRET": "x"}
    config = load_config(example, env=env)
    assert config.channel("web") is not None


def test_a_relative_data_dir_in_a_file_is_next_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wherever kefu is started from, the file's data_dir (and so its SQLite database) is the same."""
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "kefu.toml"
    path.write_text('data_dir = "./kefu-data"\n', encoding="utf-8")
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, env={})
    assert Path(config.data_dir) == (tmp_path / "etc" / "kefu-data").resolve()
    assert config.database_url == f"sqlite:///{(tmp_path / 'etc' / 'kefu-data' / 'kefu.db').resolve()}"
    # absolute paths, the environment and the default without a file keep their meaning
    path.write_text(f'data_dir = "{tmp_path / "abs"}"\n', encoding="utf-8")
    assert Path(load_config(path, env={}).data_dir) == tmp_path / "abs"
    assert load_config(path, env={"KEFU_DATA_DIR": "./mine"}).data_dir == "./mine"
    assert load_config(None, env={}).data_dir == "./kefu-data"


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"KEFU_SERVER_PORT": "eighty"})
    assert str(caught.value) == ("config error in the environment (KEFU_SERVER_PORT): server.port: "
                                 "expected a whole number, got 'eighty'")
    assert load_config(path, env={"KEFU_SERVER_PORT": "9100"}).server.port == 9100
    assert type(load_config(path, env={"KEFU_TIMEZONE": "UTC"}).timezone) is str  # no marker leaks out
