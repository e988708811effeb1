"""The dashboard's pages as server-rendered HTML: every value from data is escaped; inline CSS and a little plain JS."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from dashboard.alerts import AlertRow
from dashboard.state import CARD_FIELDS, UNKNOWN, Card
from engine.signals.registry import kind_names

CHART_RANGES = ("15m", "1h", "4h", "24h")
FACTS_SHOWN = 6
LABELS = {
    "delta_5m": "Delta 5m", "delta_1h": "Delta 1h", "cvd": "CVD today", "buy_volume": "Buy vol 1h",
    "sell_volume": "Sell vol 1h", "buy_share": "Split 1h", "trades": "Trades 1h", "whales": "Whales 1h",
    "burst": "Burst", "last_trade_age": "Last trade", "lag": "Lag",
    "event_time_lag": "Behind market", "processing_lag": "Processing lag", "gaps": "Gaps",
}
FUTURES_LABELS = {"liquidations": "Liquidated 1h", "open_interest": "Open interest", "funding": "Funding"}

STYLE = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2430;--muted:#68707d;--buy:#1b9e5a;--sell:#d64541;--line:#dde1e7}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--ink)}
header.top{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center;padding:.7rem 1rem;background:#1f3b73}
header.top a{color:#fff;text-decoration:none;font-weight:600}
header.top .live{margin-left:auto;color:#cfd8ea;font-size:.85rem}
main{padding:1rem;max-width:1200px;margin:0 auto}h1{font-size:1.3rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .6rem}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:.8rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.8rem 1rem;
border-top:4px solid #9aa3b2}.card[data-health=ok]{border-top-color:var(--buy)}
.card[data-health=stale]{border-top-color:var(--sell)}
.card .head{display:flex;justify-content:space-between;align-items:baseline;gap:.5rem}
.card .head a{font-weight:700;color:var(--ink)}.card .price{font-size:1.35rem;font-variant-numeric:tabular-nums}
.card dl{display:grid;grid-template-columns:auto 1fr;gap:.15rem .8rem;margin:.6rem 0 .3rem}
.card dt{color:var(--muted)}.card dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted);font-size:.85rem}.changed{animation:flash 1s}
@keyframes flash{from{background:#fff3b0}to{background:transparent}}
ul.alerts{list-style:none;padding:0;margin:0}
.alert{background:var(--card);border:1px solid var(--line);border-left:4px solid #9aa3b2;border-radius:8px;
padding:.6rem .8rem;margin:0 0 .6rem}.alert.sev-2{border-left-color:#e0a100}.alert.sev-3{border-left-color:var(--sell)}
.alert .meta{font-weight:600}.alert .buy{color:var(--buy)}.alert .sell{color:var(--sell)}
.alert p{margin:.3rem 0}.facts{color:var(--muted);font-size:.85rem;overflow-wrap:anywhere}
img.chart{width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:8px}
nav.ranges a,form.filters button{display:inline-block;padding:.3rem .7rem;margin:0 .3rem .5rem 0;border-radius:6px;
border:1px solid var(--line);background:#fff;color:var(--ink);text-decoration:none}
nav.ranges a.on{background:#1f3b73;color:#fff}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:1rem}
form.filters label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
select,input{font:inherit;padding:.3rem}form.login{display:flex;flex-direction:column;gap:.6rem;max-width:320px}
.error{color:var(--sell)}
"""

SCRIPT = """
(function () {
  "use strict";
  var status = document.getElementById("live");
  var source = new EventSource("/events");
  source.onopen = function () { status.textContent = "live"; };
  source.onerror = function () { status.textContent = "reconnecting…"; };
  function put(el, text) {
    if (el.textContent === text) { return; }
    el.textContent = text;
    el.classList.remove("changed");
    void el.offsetWidth;
    el.classList.add("changed");
  }
  source.addEventListener("card", function (e) {
    var c = JSON.parse(e.data);
    var el = document.getElementById("card-" + c.symbol);
    var grid = document.getElementById("cards");
    if (!el) {
      var template = document.getElementById("card-template");
      if (!grid || !template) { return; }
      el = template.content.firstElementChild.cloneNode(true);
      el.id = "card-" + c.symbol;
      var link = el.querySelector("a.symbol");
      link.textContent = c.symbol;
      link.href = "/symbol/" + encodeURIComponent(c.symbol);
      grid.appendChild(el);
    }
    el.setAttribute("data-health", c.health);
    Object.keys(c.fields).forEach(function (name) {
      var field = el.querySelector('[data-field="' + name + '"]');
      if (field) { put(field, c.fields[name]); }
    });
  });
  function node(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) { el.className = cls; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }
  source.addEventListener("alert", function (e) {
    var list = document.getElementById("alerts");
    if (!list) { return; }
    var a = JSON.parse(e.data), want = list.dataset;
    if ((want.symbol && want.symbol !== a.symbol) || (want.kind && want.kind !== a.kind) ||
        (want.minSeverity && a.severity < Number(want.minSeverity))) { return; }
    var seen = Array.prototype.some.call(list.children, function (li) { return li.dataset.id === a.id; });
    if (seen) { return; }
    var li = node("li", "alert sev-" + a.severity);
    li.dataset.id = a.id;
    var meta = node("div", "meta");
    meta.appendChild(node("span", "", a.when + " "));
    var link = node("a", "", a.symbol);
    link.href = "/symbol/" + encodeURIComponent(a.symbol);
    meta.appendChild(link);
    meta.appendChild(node("span", "", " " + a.kind + " "));
    meta.appendChild(node("span", a.direction, a.direction));
    meta.appendChild(node("span", "", " · severity " + a.severity));
    li.appendChild(meta);
    li.appendChild(node("div", "facts", a.facts));
    li.appendChild(node("p", "explanation", a.explanation || "No explanation yet."));
    li.appendChild(node("p", "muted", a.byline));
    var empty = document.getElementById("no-alerts");
    if (empty) { empty.remove(); }
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 100) { list.removeChild(list.lastChild); }
  });
})();
"""


def layout(title: str, body: str, *, live: bool = True) -> str:
    """A whole page: the top bar, the body, and the live script when the page follows the event stream."""
    script = f"<script>{SCRIPT}</script>" if live else ""
    live_state = '<span class="live" id="live">connecting…</span>' if live else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · Flowbot</title><style>{STYLE}</style></head><body>"
        '<header class="top"><a href="/">Flowbot</a><a href="/alerts">Alerts</a><a href="/stats">Stats</a>'
        f"{live_state}</header><main>{body}</main>{script}</body></html>"
    )


def card_html(card: Card) -> str:
    f = {name: escape(card.fields.get(name, UNKNOWN)) for name in CARD_FIELDS}
    labels = LABELS | {name: label for name, label in FUTURES_LABELS.items() if name in card.fields}  # USD-M only
    rows = "".join(f'<dt>{escape(label)}</dt><dd data-field="{name}">{escape(card.fields.get(name, UNKNOWN))}</dd>'
                   for name, label in labels.items())
    symbol = escape(card.symbol)
    return (
        f'<article class="card" id="card-{symbol}" data-health="{escape(card.health)}">'
        f'<div class="head"><a class="symbol" href="/symbol/{quote(card.symbol)}">{symbol}</a>'
        f'<span class="price" data-field="price">{f["price"]}</span></div>'
        f'<dl>{rows}</dl><div class="muted">window to <span data-field="window">{f["window"]}</span></div></article>'
    )


def alert_json(row: AlertRow) -> dict[str, Any]:
    """An alert as the page shows it (rendered here and sent to live pages): texts only."""
    s = row.signal
    facts = ", ".join(f"{k}={v}" for k, v in list(s.evidence.items())[:FACTS_SHOWN])
    delivered = f"delivered to {row.delivered} destination{'s' if row.delivered != 1 else ''}"
    byline = f"explained by {row.provider} · {delivered}" if row.provider else delivered
    return {
        "id": s.id, "symbol": s.symbol, "kind": s.kind, "direction": s.direction, "severity": s.severity,
        "when": f"{datetime.fromtimestamp(s.window_start / 1000, UTC):%Y-%m-%d %H:%M:%S}Z", "facts": facts,
        "explanation": row.explanation, "byline": byline,
    }


def alert_html(data: dict[str, Any]) -> str:
    e = {k: escape(str(v)) for k, v in data.items() if v is not None}
    explanation = e.get("explanation", "No explanation yet.")
    return (
        f'<li class="alert sev-{data["severity"]:d}" data-id="{e["id"]}"><div class="meta">{e["when"]} '
        f'<a href="/symbol/{quote(data["symbol"])}">{e["symbol"]}</a> {e["kind"]} '
        f'<span class="{e["direction"]}">{e["direction"]}</span> · severity {data["severity"]:d}</div>'
        f'<div class="facts">{e["facts"]}</div><p class="explanation">{explanation}</p>'
        f'<p class="muted">{e["byline"]}</p></li>'
    )


def alerts_list(rows: list[AlertRow], filters: dict[str, str]) -> str:
    """The alerts as a list that live pages extend with matching new ones (`filters`: symbol, kind, min-severity)."""
    attributes = "".join(f' data-{name}="{escape(value)}"' for name, value in filters.items() if value)
    items = "".join(alert_html(alert_json(row)) for row in rows)
    empty = "" if rows else '<p class="muted" id="no-alerts">No alerts yet.</p>'
    return f'{empty}<ul class="alerts" id="alerts"{attributes}>{items}</ul>'


def index_page(cards: list[Card], alerts: list[AlertRow]) -> str:
    template = card_html(Card("", {}, "unknown"))
    body = (
        f'<h1>Flow</h1><div id="cards">{"".join(card_html(c) for c in cards)}</div>'
        f'<template id="card-template">{template}</template>'
        f"<h2>Latest alerts</h2>{alerts_list(alerts, {})}"
    )
    return layout("Flow", body)


def symbol_page(card: Card, span: str, has_chart: bool, alerts: list[AlertRow]) -> str:
    symbol = quote(card.symbol)
    ranges = "".join(
        f'<a href="/symbol/{symbol}?range={r}"{" class=on" if r == span else ""}>{r}</a>' for r in CHART_RANGES
    )
    chart = (
        f'<img class="chart" src="/symbol/{symbol}/chart.png?range={escape(span)}" width="1000" height="800" '
        f'alt="{escape(card.symbol)}: price with whale trades, CVD and buy/sell volume over {escape(span)}">'
        if has_chart else '<p class="muted">No stored windows for this symbol yet.</p>'
    )
    body = (
        f"<h1>{escape(card.symbol)}</h1>{card_html(card)}<h2>Chart</h2>"
        f'<nav class="ranges">{ranges}</nav>{chart}'
        f"<h2>Recent signals</h2>{alerts_list(alerts, {'symbol': card.symbol})}"
    )
    return layout(card.symbol, body)


def _options(values: list[str], chosen: str, all_label: str) -> str:
    options = [f'<option value="">{escape(all_label)}</option>']
    options += [f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(v)}</option>'
                for v in values]
    return "".join(options)


def alerts_page(rows: list[AlertRow], symbols: list[str], symbol: str, kind: str, min_severity: int) -> str:
    severities = "".join(
        f'<option value="{n}"{" selected" if n == min_severity else ""}>{n} and above</option>' for n in (1, 2, 3)
    )
    form = (
        '<form class="filters" method="get" action="/alerts">'
        f'<label>Symbol<select name="symbol">{_options(symbols, symbol, "all symbols")}</select></label>'
        f'<label>Kind<select name="kind">{_options(list(kind_names()), kind, "all kinds")}</select></label>'
        f'<label>Severity<select name="severity">{severities}</select></label>'
        "<button type=submit>Filter</button></form>"
    )
    filters = {"symbol": symbol, "kind": kind, "min-severity": str(min_severity) if min_severity > 1 else ""}
    return layout("Alerts", f"<h1>Alerts</h1>{form}{alerts_list(rows, filters)}")


def stats_page(lines: list[str], symbols: list[str], symbol: str) -> str:
    """Each kind's track record per symbol: the table of /stats and `flowbot stats`."""
    form = ('<form class="filters" method="get" action="/stats">'
            f'<label>Symbol<select name="symbol">{_options(symbols, symbol, "all symbols")}</select></label>'
            "<button type=submit>Show</button></form>")
    rows = "".join(f'<li class="record">{escape(line)}</li>' for line in lines)
    table = f'<ul class="records" id="records">{rows}</ul>' if lines else \
        '<p class="muted" id="no-records">No track record yet.</p>'
    note = ('<p class="muted">Signals of the last 30 days, measured 15 minutes after their window in the direction'
            " they imply.</p>")
    return layout("Stats", f"<h1>Track records</h1>{form}{note}{table}", live=False)


def login_page(next_path: str, error: str | None = None) -> str:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        f"<h1>Sign in</h1>{message}"
        f'<form class="login" method="post" action="/login?{urlencode({"next": next_path})}">'
        '<label>Dashboard token<br><input type="password" name="token" autocomplete="current-password" '
        'required autofocus></label><button type="submit">Sign in</button></form>'
    )
    return layout("Sign in", body, live=False)
