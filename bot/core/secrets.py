"""Secrets generated on first start and kept in the data directory.

Why: `kefu run` on a fresh machine needs a Flask session key and a key to sign web-chat
visitor ids, and must keep them across restarts without anyone writing them into code or a
config file. A configured value always wins over the generated one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure_secret(data_dir: str | Path, name: str, configured: str = "") -> str:
    if configured:
        return configured
    path = Path(data_dir) / "secrets" / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode())
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return value
