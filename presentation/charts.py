"""Price, CVD and buy/sell volume of one symbol over a span, as a PNG for the bots' /chart and the dashboard."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

from storage.feature_store import FeatureStore
from storage.flow_query import FLOW_SPANS_MS, latest_span

MAX_BARS = 300
DPI = 100
BUY_COLOUR = "#1b9e5a"
SELL_COLOUR = "#d64541"
PRICE_COLOUR = "#1f3b73"
# Bucket lengths a span is resampled to: the shortest one that gives at most MAX_BARS buckets (and holds a window).
_BUCKETS_MS = (5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000)
# Scatter area (pt^2) of the smallest and, where bars are wide enough, of the largest whale quote in the chart.
_MARKER_AREA = (25.0, 320.0)
_PANEL_TITLE = {"loc": "left", "fontsize": 10, "color": "dimgrey"}


@dataclass(frozen=True)
class Chart:
    """A rendered chart and the facts it shows, for the caption."""

    symbol: str
    span: str
    start_ms: int  # the span: [start_ms, end_ms), ending at the newest stored window's end
    end_ms: int
    windows: int  # stored windows in the span
    bucket_ms: int  # length of one plotted bar; buckets start at start_ms + k * bucket_ms, so the last ends at end_ms
    bars: int  # buckets that hold stored windows (the points plotted per series)
    whale_windows: int  # stored windows with whale_count > 0
    whale_markers: int  # buckets marked as holding whale trades
    png: bytes = field(repr=False)
    liquidation_windows: int = 0  # USD-M: stored windows with liquidations (drawn in a panel of their own)
    open_interest_points: int = 0  # USD-M: buckets with a known open interest (drawn as a line)


@dataclass(frozen=True)
class _Bars:
    """The span's windows resampled to a grid of buckets; buckets without windows hold NaN prices and zero volume."""

    start_ms: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    cvd: np.ndarray
    buy_volume: np.ndarray
    sell_volume: np.ndarray
    whale_count: np.ndarray
    whale_buy_quote: np.ndarray
    whale_sell_quote: np.ndarray


@dataclass(frozen=True)
class _Futures:
    """USD-M data on the same bucket grid: liquidation notional per side (summed) and open interest (last)."""

    liq_long_quote: np.ndarray
    liq_short_quote: np.ndarray
    open_interest: np.ndarray


def render_chart(
    store: FeatureStore, symbol: str, span: str = "1h", size: tuple[int, int] = (1000, 800)
) -> Chart | None:
    """The chart of `span` ending at the symbol's newest stored window, size in pixels; None if nothing is stored."""
    if span not in FLOW_SPANS_MS:
        raise ValueError(f"unknown chart span {span!r}: use one of {', '.join(FLOW_SPANS_MS)}")
    found = latest_span(store, symbol, span)
    if found is None:
        return None
    start, end, everything = found
    traded = everything.filter(pc.greater(everything["trade_count"], 0))  # USD-M futures-only windows: no price
    table = traded if traded.num_rows else everything
    starts = _millis(table, "window_start")
    window_ms = int(_millis(table, "window_end")[-1] - starts[-1])
    bucket = _bucket_ms(FLOW_SPANS_MS[span], window_ms)
    bars = _resample(table, starts, start, bucket)
    whale_markers = int(np.count_nonzero(bars.whale_count))
    futures = _futures(everything, bars, bucket)
    title = f"{symbol} · {span} · {_utc(start)} to {_utc(end)} UTC"
    png = _draw(bars, futures, bucket, title, (start, end), size)
    liquidated = everything["liq_count"].drop_null()
    return Chart(
        symbol=symbol, span=span, start_ms=start, end_ms=end, windows=table.num_rows, bucket_ms=bucket,
        bars=int(np.count_nonzero(~np.isnan(bars.close))),
        whale_windows=int(np.count_nonzero(table["whale_count"].to_numpy() > 0)), whale_markers=whale_markers,
        png=png, liquidation_windows=len(liquidated),
        open_interest_points=int(np.count_nonzero(~np.isnan(futures.open_interest))) if futures else 0,
    )


def _futures(table: pa.Table, bars: _Bars, bucket_ms: int) -> _Futures | None:
    """The USD-M columns on the bars' grid; None for a spot symbol (no liquidation or open interest stored)."""
    if table["liq_count"].null_count == table.num_rows and table["open_interest"].null_count == table.num_rows:
        return None
    slots = (_millis(table, "window_start") - int(bars.start_ms[0])) // bucket_ms
    inside = (slots >= 0) & (slots < len(bars.start_ms))
    slots = slots[inside]

    def values(name: str) -> np.ndarray:
        return table[name].to_numpy(zero_copy_only=False).astype(np.float64)[inside]

    longs, shorts = np.zeros(len(bars.start_ms)), np.zeros(len(bars.start_ms))
    np.add.at(longs, slots, np.nan_to_num(values("liq_long_quote")))
    np.add.at(shorts, slots, np.nan_to_num(values("liq_short_quote")))
    interest = np.full(len(bars.start_ms), np.nan)
    known = ~np.isnan(values("open_interest"))
    interest[slots[known]] = values("open_interest")[known]  # windows in time order: the bucket's last wins
    return _Futures(longs, shorts, interest)


def _millis(table: pa.Table, column: str) -> np.ndarray:
    return table[column].cast(pa.int64()).to_numpy()


def _utc(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M}"


def _bucket_ms(span_ms: int, window_ms: int) -> int:
    """The shortest bucket length that cuts the span into at most MAX_BARS buckets and is no shorter than a window."""
    need = max(-(-span_ms // MAX_BARS), window_ms)
    return next((bucket for bucket in _BUCKETS_MS if bucket >= need), need)


def _resample(table: pa.Table, starts: np.ndarray, origin_ms: int, bucket_ms: int) -> _Bars:
    """Windows (sorted by start) into buckets from origin_ms: high max, low min, close and CVD last, the rest summed."""
    keys = (starts - origin_ms) // bucket_ms
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    last = np.r_[first[1:] - 1, len(keys) - 1]
    slots = keys[first] - keys[0]

    def column(name: str) -> np.ndarray:
        return table[name].to_numpy().astype(np.float64)

    def grid(values: np.ndarray, empty: float) -> np.ndarray:
        out = np.full(int(slots[-1]) + 1, empty)
        out[slots] = values
        return out

    return _Bars(
        start_ms=origin_ms + (keys[0] + np.arange(int(slots[-1]) + 1)) * bucket_ms,
        high=grid(np.maximum.reduceat(column("high"), first), np.nan),
        low=grid(np.minimum.reduceat(column("low"), first), np.nan),
        close=grid(column("close")[last], np.nan),
        cvd=grid(column("cvd")[last], np.nan),
        buy_volume=grid(np.add.reduceat(column("buy_volume"), first), 0.0),
        sell_volume=grid(np.add.reduceat(column("sell_volume"), first), 0.0),
        whale_count=grid(np.add.reduceat(column("whale_count"), first), 0.0),
        whale_buy_quote=grid(np.add.reduceat(column("whale_buy_quote"), first), 0.0),
        whale_sell_quote=grid(np.add.reduceat(column("whale_sell_quote"), first), 0.0),
    )


def _draw(
    bars: _Bars, futures: _Futures | None, bucket_ms: int, title: str, span: tuple[int, int], size: tuple[int, int]
) -> bytes:
    """The panels on one UTC time axis (USD-M: liquidations and open interest too), as PNG bytes (a Figure of its
    own: no pyplot, no global state)."""
    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    show_liquidations = futures is not None and bool((futures.liq_long_quote + futures.liq_short_quote).any())
    show_interest = futures is not None and not np.isnan(futures.open_interest).all()
    ratios: tuple[float, ...] = (3, 1.6, 1.6) if not (show_liquidations or show_interest) else (3, 1.3, 1.3)
    ratios += (1.3,) * show_liquidations + (1.1,) * show_interest
    panels = tuple(figure.subplots(len(ratios), 1, sharex=True, height_ratios=ratios))
    price, cvd, volume = panels[:3]
    figure.suptitle(title, fontsize=13, fontweight="bold")
    left = mdates.date2num(np.array(bars.start_ms, dtype="datetime64[ms]"))
    width = bucket_ms / 86_400_000
    x = left + width / 2
    bar_px = size[0] * 0.85 * bucket_ms / (span[1] - span[0])
    _draw_price(price, x, bars, float(np.clip((3 * bar_px) ** 2, 2 * _MARKER_AREA[0], _MARKER_AREA[1])))
    price.set_title(f"Price: close and high-low of {_bucket_label(bucket_ms)} bars", **_PANEL_TITLE)
    _draw_line(cvd, x, bars.cvd)
    cvd.axhline(0, color="grey", linewidth=0.6)
    cvd.set_title("CVD (cumulative buy - sell volume, from 00:00 UTC)", **_PANEL_TITLE)
    _draw_bars(volume, left + width * 0.075, width * 0.85, bars.buy_volume, BUY_COLOUR, "buy")
    _draw_bars(volume, left + width * 0.075, width * 0.85, -bars.sell_volume, SELL_COLOUR, "sell")
    volume.axhline(0, color="grey", linewidth=0.6)
    volume.set_title("Volume: buys up, sells down", **_PANEL_TITLE)
    if futures is not None and show_liquidations:
        liquidations = panels[3]
        _draw_bars(liquidations, left + width * 0.075, width * 0.85, futures.liq_short_quote, BUY_COLOUR, "shorts")
        _draw_bars(liquidations, left + width * 0.075, width * 0.85, -futures.liq_long_quote, SELL_COLOUR, "longs")
        liquidations.axhline(0, color="grey", linewidth=0.6)
        liquidations.autoscale_view()
        liquidations.set_title("Liquidations (quote, at least: Binance pushes one per symbol per second): shorts "
                               "up, longs down", **_PANEL_TITLE)
    if futures is not None and show_interest:
        interest = panels[-1]
        _draw_line(interest, x, futures.open_interest)
        interest.ticklabel_format(axis="y", useOffset=False, style="plain")
        interest.set_title("Open interest (base units)", **_PANEL_TITLE)
    bottom = panels[-1]
    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=9)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    bottom.set_xlim(mdates.date2num(np.array(span, dtype="datetime64[ms]")))
    bottom.set_xlabel("UTC")
    for axes in panels:
        axes.grid(alpha=0.25)
    _fit_margins(figure, canvas.get_renderer(), panels, size)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _fit_margins(figure: Figure, renderer: RendererAgg, panels: tuple[Axes, ...], size: tuple[int, int]) -> None:
    """Margins in pixels, the left one as wide as the widest y tick labels (a constrained layout is twice as slow)."""
    top, bottom, gap = 60, 55, 28  # suptitle and first panel title; x tick labels and "UTC"; a panel title
    panels_px = size[1] - top - bottom
    figure.subplots_adjust(right=1 - 20 / size[0], top=1 - top / size[1], bottom=bottom / size[1],
                           hspace=gap * len(panels) / (panels_px - gap * (len(panels) - 1)))
    # Measured once the heights, so the y ticks, are final: how far the tick labels reach left of their panel.
    reach = max(axes.get_window_extent(renderer).x0 - _tight_left(axes, renderer) for axes in panels)
    figure.subplots_adjust(left=(reach + 8) / size[0])



def _tight_left(axes: Axes, renderer: RendererAgg) -> float:
    """The left edge of a panel's y axis with its tick labels (the panel's own edge for an invisible axis)."""
    box = axes.yaxis.get_tightbbox(renderer)
    return axes.get_window_extent(renderer).x0 if box is None else box.x0


def _draw_line(axes: Axes, x: np.ndarray, y: np.ndarray, **style: Any) -> None:
    """A line broken where buckets are empty (NaN), with a dot for each point that has no neighbour to join."""
    axes.plot(x, y, color=PRICE_COLOUR, linewidth=1.4, **style)
    present = ~np.isnan(y)
    alone = present & ~np.r_[False, present[:-1]] & ~np.r_[present[1:], False]
    axes.plot(x[alone], y[alone], linestyle="none", marker="o", markersize=4, color=PRICE_COLOUR)


def _draw_bars(axes: Axes, left: np.ndarray, width: float, heights: np.ndarray, colour: str, label: str) -> None:
    """Bars from zero as one collection (a Rectangle per bar, as Axes.bar makes, is several times slower)."""
    zero = np.zeros_like(heights)
    right = left + width
    corners = [np.c_[left, zero], np.c_[left, heights], np.c_[right, heights], np.c_[right, zero]]
    polygons = cast(Any, np.stack(corners, axis=1))  # an (n, 4, 2) array: matplotlib's fast path, not a list
    axes.add_collection(PolyCollection(polygons, facecolors=colour, linewidths=0, label=label))


def _draw_price(axes: Axes, x: np.ndarray, bars: _Bars, largest_area: float) -> None:
    """High/low band, close line and whale markers: buys below the low, sells above the high, area by whale quote."""
    axes.fill_between(x, bars.low, bars.high, color=PRICE_COLOUR, alpha=0.18, linewidth=0, label="high-low")
    _draw_line(axes, x, bars.close, label="close")
    marked = bars.whale_count > 0
    quote = bars.whale_buy_quote + bars.whale_sell_quote
    largest = quote[marked].max() if marked.any() else 0.0
    scale = np.sqrt(quote / largest) if largest > 0 else np.zeros_like(quote)
    area = _MARKER_AREA[0] + (largest_area - _MARKER_AREA[0]) * scale
    pad = 0.04 * (np.nanmax(bars.high) - np.nanmin(bars.low))
    buys = marked & (bars.whale_buy_quote >= bars.whale_sell_quote)
    sells = marked & ~buys
    for where, y, marker, colour, label in ((buys, bars.low - pad, "^", BUY_COLOUR, "whale buys"),
                                            (sells, bars.high + pad, "v", SELL_COLOUR, "whale sells")):
        if where.any():
            axes.scatter(x[where], y[where], s=area[where], marker=marker, color=colour, edgecolors="black",
                         linewidths=0.5, zorder=3, label=label)
    axes.ticklabel_format(axis="y", useOffset=False, style="plain")
    legend = axes.legend(loc="upper left", fontsize=8, ncols=4)
    for handle in legend.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_sizes([_MARKER_AREA[0] * 2])


def _bucket_label(bucket_ms: int) -> str:
    seconds = bucket_ms // 1000
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
