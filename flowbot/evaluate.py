"""`flowbot evaluate`: replay files into DATA_DIR, then write outcomes.csv, summary.csv and report.html (+ charts)."""

from __future__ import annotations

import html
import io
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.table import Table

from core.settings import Settings
from flowbot.evaluation import PriceTape, baselines, outcomes, summary
from flowbot.replay import ReplayReport, replay

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CHARTS = ("cumulative_signed_return.png", "hit_rate_by_severity.png", "signed_return_distribution.png")


async def evaluate(
    paths: list[Path], settings: Settings, horizons: dict[str, int], out_dir: Path | None = None,
    *, symbol: str | None = None, console: Console | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay `paths` with the current settings, measure every signal the run stored; (outcomes, summary)."""
    console = console or Console(width=None if Console().is_terminal else 160)
    tape = PriceTape()
    with open(os.devnull, "w") as quiet:
        report = await replay(paths, settings, symbol=symbol, out=quiet, tap=tape.add,
                              err=Console(stderr=True, soft_wrap=True))
    signals = _stored_signals(Path(settings.data_dir) / "flowbot.db", tape)
    frame = outcomes(signals, tape, horizons)
    window_ms = int(settings.window_duration * 1000)
    table = summary(frame, baselines(tape, horizons, window_ms), horizons)
    out_dir = out_dir or Path(settings.data_dir) / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "outcomes.csv", index=False)
    table.to_csv(out_dir / "summary.csv", index=False)
    _report(frame, table, horizons, out_dir, report)
    console.print(_rich_summary(table, horizons))
    console.print(f"{len(frame):,} signals from {report.trades:,} trades; written to {out_dir}", markup=False)
    return frame, table


def _stored_signals(db: Path, tape: PriceTape) -> pd.DataFrame:
    """The stored signals of the replayed symbols whose windows lie within the replayed trades."""
    columns = ["signal_id", "symbol", "kind", "direction", "severity", "window_end"]
    frames = []
    with sqlite3.connect(db) as conn:
        for sym in tape.symbols():
            time = tape.tape(sym)[0]
            frames.append(pd.read_sql_query(
                "SELECT id AS signal_id, symbol, kind, direction, severity, window_end FROM signals"
                " WHERE symbol = ? AND window_end > ? AND window_start <= ? ORDER BY window_end, id",
                conn, params=(sym, int(time[0]), int(time[-1]))))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _rich_summary(table: pd.DataFrame, horizons: dict[str, int]) -> Table:
    shown = Table(title="signals against a random moment (signed returns in basis points)")
    for name in ("symbol", "kind", "direction", "signals"):
        shown.add_column(name)
    for label in horizons:
        shown.add_column(f"hit {label}", justify="right")
        shown.add_column(f"edge {label} bp", justify="right")
    for row in table.itertuples(index=False):
        values = row._asdict()
        cells = [str(values["symbol"]), str(values["kind"]), str(values["direction"]), str(values["signals"])]
        for label in horizons:
            cells.append(_fmt(values[f"hit_rate_{label}"], 100, "%"))
            cells.append(_fmt(values[f"edge_{label}"], 10_000, ""))
        shown.add_row(*cells)
    return shown


def _fmt(value: float, scale: float, unit: str) -> str:
    return "-" if pd.isna(value) else f"{value * scale:.1f}{unit}"


def _report(frame: pd.DataFrame, table: pd.DataFrame, horizons: dict[str, int], out_dir: Path,
            replayed: ReplayReport) -> None:
    """report.html: the summary as a table, and the charts as PNG files beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = "15m" if "15m" in horizons else next(iter(horizons))
    signed = f"signed_ret_{label}"
    ordered = frame.sort_values("window_end")

    fig, ax = plt.subplots(figsize=(9, 4))
    for kind, group in ordered.groupby("kind"):
        steps = group[["window_end", signed]].dropna()
        ax.plot(pd.to_datetime(steps["window_end"], unit="ms", utc=True), (steps[signed] * 10_000).cumsum(),
                label=str(kind), drawstyle="steps-post")
    ax.set_title(f"cumulative signed return after {label} per kind (bp)")
    _save(fig, ax, out_dir / CHARTS[0])

    fig, ax = plt.subplots(figsize=(9, 4))
    hits = frame.dropna(subset=[signed]).assign(hit=lambda f: f[signed] > 0)
    if len(hits):
        hits.groupby(["kind", "severity"])["hit"].mean().unstack("severity").plot.bar(ax=ax)
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_title(f"hit rate after {label} by kind and severity")
    _save(fig, ax, out_dir / CHARTS[1])

    fig, ax = plt.subplots(figsize=(9, 4))
    values = frame[signed].dropna() * 10_000
    if len(values):
        ax.hist(values, bins=min(60, max(5, len(values) // 5)))
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_title(f"distribution of signed returns after {label} (bp)")
    _save(fig, ax, out_dir / CHARTS[2])

    summary_html = table.to_html(index=False, float_format=lambda v: f"{v:.6g}", na_rep="", border=0)
    images = "".join(f'<p><img src="{name}" alt="{html.escape(name)}"></p>' for name in CHARTS)
    page = io.StringIO()
    page.write("<!doctype html><html><head><meta charset=\"utf-8\"><title>Flowbot evaluation</title>"
               "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
               "td,th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}</style>"
               "</head><body><h1>Flowbot evaluation</h1>")
    page.write(f"<p>{replayed.trades:,} trades from {replayed.files} file(s), {len(frame):,} signals; horizons "
               f"{html.escape(', '.join(horizons))}. Returns are fractions; edge = mean signed return minus the "
               "baseline's (every window of the symbol with trades, signed the same way).</p>")
    page.write(summary_html + images + "</body></html>")
    (out_dir / "report.html").write_text(page.getvalue(), encoding="utf-8")


def _save(fig: Figure, ax: Axes, path: Path) -> None:
    import matplotlib.pyplot as plt

    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
