"""Configuration: one TOML file into typed, frozen dataclasses.

Why: every process (`kefu run`, `kefu serve`, `kefu admin`, `kefu scheduler`) must read the
same settings the same way, and a mistake in the file must stop the process at start with a
sentence that names the key and the file, not with a traceback from deep inside a request.

Sources, later wins: built-in defaults < the TOML file (`--config PATH` or `KEFU_CONFIG`)
< environment variables `KEFU_<SECTION>_<KEY>` (e.g. `KEFU_DATABASE_URL`,
`KEFU_SERVER_PORT`) and `KEFU_CHANNELS_<NAME>_<KEY>` for a channel.
String values may reference the environment as `${VAR}` or `${VAR:-default}`, so secrets
stay out of the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_args, get_origin, get_type_hints

ENV_PREFIX = "KEFU_"
CHANNEL_KINDS = ("web", "wechat_mp", "wecom", "wechat_kf")
RECEPTION_MODES = ("bot_first", "human_first", "mixed")


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the key and where it came from."""

    def __init__(self, key: str, source: str, problem: str) -> None:
        self.key, self.source, self.problem = key, source, problem
        super().__init__(f"config error in {source}: {key}: {problem}")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how customers and WeChat reach us; defaults to http://host:port
    max_body_bytes: int = 256 * 1024
    workers: int = 8  # threads that run the (blocking) core per process
    event_loop: str = "uvloop"  # "uvloop" (libuv's loop, where installed) or "asyncio" (the standard one)


@dataclass(frozen=True)
class AdminConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    secret_key: str = ""  # Flask session key; generated into data_dir when empty
    secure_cookies: bool = False  # the session cookie only over HTTPS (behind TLS)
    # reverse proxies in front of the panel whose X-Forwarded-For/-Proto are believed: the
    # login throttle counts per client address, which behind a proxy is the proxy's otherwise
    proxies: int = 0


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # empty: sqlite:///<data_dir>/kefu.db


@dataclass(frozen=True)
class FaqConfig:
    threshold: float = 0.7  # a calibrated confidence: see bot/faq/calibration.py
    suggestions: int = 3


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True
    timezone: str = "Asia/Shanghai"
    lease_seconds: int = 15


@dataclass(frozen=True)
class OutboxConfig:
    poll_seconds: float = 0.5
    max_attempts: int = 8
    batch: int = 100
    # a sender's claim on a batch lasts this long and is renewed while the batch is sent:
    # the rows of a sender that died are taken up by another within this time (bot/sending/outbox.py)
    lease_seconds: float = 5.0


@dataclass(frozen=True)
class OrdersConfig:
    """The shop system's signed order API (`POST /api/orders`)."""

    secret: str = ""  # HMAC-SHA256 key shared with the shop; empty: the API answers 503
    max_skew_seconds: int = 300  # X-Kefu-Timestamp must be this close to our clock


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "json"  # json | text


@dataclass(frozen=True)
class MetricsConfig:
    """`GET /metrics` (Prometheus) on the webhook server and the admin: off unless enabled, and
    then only with `Authorization: Bearer <token>`: the numbers are not for customers."""

    enabled: bool = False
    token: str = ""


@dataclass(frozen=True)
class ChannelConfig:
    """One IM entry point. Channels are configuration, not database rows."""

    name: str
    kind: str
    secret: str = ""  # web: HMAC key for visitor tokens (generated when empty)
    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    encoding_aes_key: str = ""
    corp_id: str = ""
    agent_id: str = ""
    open_kfid: str = ""
    api_base: str = ""
    deadline_seconds: float = 4.0
    rate_per_second: float = 0.0  # 0 = unlimited


@dataclass(frozen=True)
class Config:
    data_dir: str = "./kefu-data"
    timezone: str = "Asia/Shanghai"
    server: ServerConfig = field(default_factory=ServerConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    faq: FaqConfig = field(default_factory=FaqConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    log: LogConfig = field(default_factory=LogConfig)
    orders: OrdersConfig = field(default_factory=OrdersConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    channels: tuple[ChannelConfig, ...] = (ChannelConfig(name="web", kind="web"),)
    source: str = "<defaults>"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{Path(self.data_dir).resolve() / 'kefu.db'}"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host
        return f"http://{host}:{self.server.port}"

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)


CHANNEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ChannelConfig))
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: str, key: str, source: str, env: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(key, source, f"environment variable ${{{name}}} is not set")

    return _ENV_REF.sub(sub, value)


class _FromEnv(str):
    """A value set by an environment variable: a mistake in it names the variable, not the file."""

    variable: str = ""


def _coerce(value: Any, typ: Any, key: str, source: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, _FromEnv):
        source = f"the environment ({value.variable})"
        value = str(value)
    if isinstance(value, str):
        value = _expand(value, key, source, env)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, source, f"expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(key, source, f"expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, source, f"expected a whole number, got {value!r}") from None
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(key, source, f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, source, f"expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(key, source, f"expected text, got {type(value).__name__}")
        return str(value)
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str, source: str, env: Mapping[str, str]) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip("."), source, "expected a table")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", source, f"unknown key (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        typ = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, f"{key}.", source, env)
        elif get_origin(typ) is tuple:
            (item_type, _) = get_args(typ)
            if not isinstance(value, list):
                raise ConfigError(key, source, "expected an array of tables ([[channels]])")
            kwargs[name] = tuple(
                _build(item_type, item, f"{key}[{i}].", source, env) for i, item in enumerate(value)
            )
        else:
            kwargs[name] = _coerce(value, typ, key, source, env)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = re.findall(r"'(\w+)'", str(exc))
        raise ConfigError(f"{prefix}{missing[0] if missing else '?'}", source, "required key is missing") from None


def _env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Fold `KEFU_SECTION_KEY` variables into the raw table, as strings to be coerced."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    sections = get_type_hints(Config)
    channels = [dict(c) for c in merged.get("channels", [])] if isinstance(merged.get("channels"), list) else None
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var in ("KEFU_CONFIG", "KEFU_TEST_DATABASE_URL"):
            continue
        value = _FromEnv(text)
        value.variable = var
        rest = var[len(ENV_PREFIX):].lower()
        if rest in ("data_dir", "timezone"):
            merged[rest] = value
            continue
        if rest.startswith("channels_") and channels is not None:
            for ch in channels:
                name = str(ch.get("name", "")).lower()
                key = rest[len(f"channels_{name}_"):]
                if name and rest.startswith(f"channels_{name}_") and key in CHANNEL_FIELDS:
                    ch[key] = value
            continue
        section, _, key = rest.partition("_")
        section_type = sections.get(section)
        if section_type is None or section == "channels" or not dataclasses.is_dataclass(section_type):
            continue  # not an override (maybe a ${VAR} the file references)
        if key in {f.name for f in dataclasses.fields(section_type)}:
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value
    if channels is not None:
        merged["channels"] = channels
    return merged


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file (if any) and the environment; raise ConfigError on any mistake."""
    env = os.environ if env is None else env
    path = path or env.get("KEFU_CONFIG") or None
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("--config", source, "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<syntax>", source, f"not valid TOML: {exc}") from None
        data_dir = raw.get("data_dir")
        if isinstance(data_dir, str) and data_dir and not Path(data_dir).expanduser().is_absolute():
            # a path in a file means next to that file, wherever kefu is started from (from
            # the working directory, `kefu init --config /etc/kefu/kefu.toml` run elsewhere
            # silently made a second, empty database there)
            raw["data_dir"] = str((Path(path).resolve().parent / data_dir).resolve())
    raw = _env_overrides(raw, env)
    config: Config = _build(Config, raw, "", source, env)
    config = dataclasses.replace(config, source=source)
    validate(config)
    return config


def validate(config: Config) -> None:
    src = config.source
    if config.faq.threshold < 0 or config.faq.threshold > 1:
        raise ConfigError("faq.threshold", src, "must be between 0 and 1")
    if not 0 <= config.admin.proxies <= 5:
        raise ConfigError("admin.proxies", src, "must be between 0 and 5 (the reverse proxies in front of the panel)")
    for key, port in (("server.port", config.server.port), ("admin.port", config.admin.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(key, src, f"port {port} is out of range 0-65535")
    url = config.database.url
    if url and not url.startswith(("sqlite:", "postgres://", "postgresql://", "postgresql+pool://")):
        raise ConfigError("database.url", src, "must start with sqlite:/// or postgresql://")
    names: set[str] = set()
    for i, ch in enumerate(config.channels):
        if ch.kind not in CHANNEL_KINDS:
            raise ConfigError(f"channels[{i}].kind", src, f"{ch.kind!r} is not one of {', '.join(CHANNEL_KINDS)}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", ch.name):
            raise ConfigError(f"channels[{i}].name", src, "use 1-32 lowercase letters, digits, - or _")
        if ch.name in names:
            raise ConfigError(f"channels[{i}].name", src, f"duplicate channel name {ch.name!r}")
        names.add(ch.name)
        if ch.kind == "wechat_mp" and not ch.token:
            raise ConfigError(f"channels[{i}].token", src, "a wechat_mp channel needs its token")
        if ch.kind in ("wecom", "wechat_kf") and not (ch.corp_id and ch.token and ch.encoding_aes_key):
            raise ConfigError(f"channels[{i}].corp_id", src, f"a {ch.kind} channel needs corp_id, token and encoding_aes_key")
        if ch.kind == "wechat_kf" and not ch.open_kfid:
            # one channel is one 客服账号: the platform's send limits are per customer per account
            raise ConfigError(f"channels[{i}].open_kfid", src, "a wechat_kf channel needs the open_kfid of its 客服账号")
        if ch.deadline_seconds <= 0:
            raise ConfigError(f"channels[{i}].deadline_seconds", src, "must be positive")
    if config.server.event_loop not in ("uvloop", "asyncio"):
        raise ConfigError("server.event_loop", src, "must be uvloop or asyncio")
    if config.log.format not in ("json", "text"):
        raise ConfigError("log.format", src, "must be json or text")
    if not 1 <= config.outbox.lease_seconds <= 600:
        raise ConfigError("outbox.lease_seconds", src, "must be between 1 and 600 seconds")
    if config.metrics.enabled and len(config.metrics.token) < 16:
        raise ConfigError("metrics.token", src, "metrics.enabled needs a token of 16 characters or more "
                          "(Prometheus sends it as Authorization: Bearer <token>)")
    if not 1 <= config.orders.max_skew_seconds <= 3600:
        raise ConfigError("orders.max_skew_seconds", src, "must be between 1 and 3600")
