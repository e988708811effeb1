"""The layers contract (pyproject.toml, import-linter) is kept, and it would catch each cycle main once had."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "engine", "storage", "presentation", "ai", "bot", "dashboard", "flowbot")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))

# (module that gains the import, the import): the five upward imports main had before the layers.
CYCLES = (
    ("engine/analysis/pipeline.py", "import storage.feature_store"),
    ("engine/bus.py", "import flowbot.compose"),
    ("ai/analyst.py", "import flowbot.cli"),
    ("bot/service.py", "import flowbot.compose"),
    ("dashboard/app.py", "import flowbot.cli"),
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120)


def test_the_layers_contract_is_kept() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


@pytest.fixture
def copy_of_packages(tmp_path: Path) -> Path:
    """The packages' sources and pyproject.toml in tmp_path (no caches)."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(("module", "line"), CYCLES, ids=[f"{m.split('/')[0]}->{i.split()[1]}" for m, i in CYCLES])
def test_an_upward_import_breaks_the_contract(copy_of_packages: Path, module: str, line: str) -> None:
    path = copy_of_packages / module
    path.write_text(f"{path.read_text()}\n{line}  # an upward import\n")
    run = lint_imports(copy_of_packages)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "0 kept, 1 broken" in run.stdout
    assert line.split()[1] in run.stdout
