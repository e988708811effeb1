"""`flowbot --help` is instant: the command line loads no front end, SDK or chart library before a command runs."""

from __future__ import annotations

import subprocess
import sys

FRONT_ENDS = ("openai", "groq", "matplotlib", "discord", "telegram", "dashboard", "ai", "bot")

PROBE = """
import runpy, sys
sys.argv = ["flowbot", "--help"]
try:
    runpy.run_module("flowbot.cli", run_name="__main__")
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(" ".join(sorted(name for name in sys.modules if "." not in name)))
"""


def test_help_imports_no_front_end() -> None:
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(run.stdout.splitlines()[-1].split())
    assert "usage: flowbot" in run.stdout
    assert loaded.isdisjoint(FRONT_ENDS), sorted(loaded & set(FRONT_ENDS))
