"""The layers of pyproject.toml's [tool.importlinter] hold, and a crossing is refused by name.

Why both: a contract that never fails proves nothing, so the second test copies the packages,
adds two imports that cross a layer (the core importing an adapter, faq importing the
conversation flow) and expects import-linter to name each.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "adapters", "jobs", "admin")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(command), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_project_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_crossing_is_refused_with_the_contract_it_breaks(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "static",
                                                                                         "templates", "translations"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "bot" / "core" / "clock.py", "a", encoding="utf-8") as clock:
        clock.write("\nimport adapters.server  # a deliberate crossing\n")
    with open(tmp_path / "bot" / "faq" / "normalize.py", "a", encoding="utf-8") as normalize:
        normalize.write("\nfrom bot.conversation import routing  # a deliberate crossing\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "bot.core is not allowed to import adapters" in result.stdout
    assert "bot.faq is not allowed to import bot.conversation" in result.stdout
    assert "- bot.faq.normalize -> bot.conversation.routing" in result.stdout
    assert "adapters import neither admin nor jobs KEPT" in result.stdout
