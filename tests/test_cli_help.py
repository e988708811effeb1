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


FLOW_PROBE = """
import runpy, sys
sys.argv = ["flowbot", "flow", "BTCUSDT", "--window", "1h"]
try:
    runpy.run_module("flowbot.cli", run_name="__main__")
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(" ".join(sorted(name for name in sys.modules if "." not in name)))
"""
NOT_FOR_FLOW = (*FRONT_ENDS, "numba", "llvmlite", "aiohttp", "httpx", "apscheduler", "redis", "rich")


def test_flow_imports_only_the_store_and_its_text(btc_data_dir) -> None:
    """`flowbot flow` reads the store and prints: no compiled kernels, HTTP clients, SDKs or front ends."""
    env = {"DATA_DIR": str(btc_data_dir), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", FLOW_PROBE], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert "BTCUSDT" in run.stdout and "VWAP" in run.stdout  # it did print the flow
    loaded = set(run.stdout.splitlines()[-1].split())
    assert loaded.isdisjoint(NOT_FOR_FLOW), sorted(loaded & set(NOT_FOR_FLOW))


def test_the_ai_sdks_are_imported_only_for_a_provider_with_a_key() -> None:
    probe = """
import sys
from core.settings import Settings
from ai.providers import providers_from
from flowbot.ai_config import ai_config
assert providers_from(ai_config(Settings(_env_file=None))) == []
print("without keys:", "groq" in sys.modules, "openai" in sys.modules)
providers_from(ai_config(Settings(_env_file=None, GROQ_API_KEY="gsk_test")))
print("with a Groq key:", "groq" in sys.modules, "openai" in sys.modules)
"""
    env = {"PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["without keys: False False", "with a Groq key: True False"]


def test_a_running_process_loads_matplotlib_only_when_a_chart_is_drawn() -> None:
    """`flowbot run` composes the engine, bots and dashboard without the chart library (~37 MB of RSS)."""
    probe = """
import sys
import flowbot.processes, flowbot.bot_side, dashboard.app, bot.handlers.commands
print("composed:", "matplotlib" in sys.modules)
from presentation.charts import render_chart
print("charting:", "matplotlib" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.split("\n")[:2] == ["composed: False", "charting: True"]
