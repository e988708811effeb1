"""Prometheus metrics: the feed's, the dispatchers' and the outbox's own counters read at scrape time, plus
counters for signals and model calls, in a registry of their own."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from core.events import Signal
from core.health import FeedHealth
from core.store_health import StoreHealth

AI_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class Attempt(Protocol):
    """One model call as the AI layer reports it."""

    @property
    def provider(self) -> str: ...

    @property
    def outcome(self) -> str: ...  # ok | rejected:<reason> | timeout | ... | circuit_open

    @property
    def seconds(self) -> float: ...


class Stats(Protocol):
    """What a Dispatcher offers to metrics."""

    @property
    def platform(self) -> str: ...

    @property
    def stats(self) -> Mapping[str, int]: ...


class Depth(Protocol):
    """What the Outbox offers to metrics."""

    def depth(self) -> dict[str, int]: ...


class Judge(Protocol):
    """What the RuleService offers to metrics."""

    @property
    def busy_s(self) -> float: ...

    @property
    def rules(self) -> Mapping[int, object]: ...


class RulesCollector(Collector):
    """Users' alert rules being judged, and the time the judging took (read from the RuleService at each scrape)."""

    def __init__(self) -> None:
        self.judges: list[Judge] = []

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("flowbot_alert_rules", "Users' alert rules being judged")
        busy = CounterMetricFamily("flowbot_alert_rule_judge_seconds", "Seconds spent judging alert rules and "
                                   "queueing their firings")
        active.add_metric([], sum(len(judge.rules) for judge in self.judges))
        busy.add_metric([], sum(judge.busy_s for judge in self.judges))
        yield from (active, busy)


class FeedCollector(Collector):
    """Per-symbol and per-connection feed counters, read from the feeds' FeedHealth at each scrape."""

    def __init__(self) -> None:
        self.feeds: list[FeedHealth] = []

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily("flowbot_messages", "WebSocket trade messages received", labels=["symbol"])
        trades = CounterMetricFamily("flowbot_trades", "Trades released in order to the pipeline", labels=["symbol"])
        gaps = CounterMetricFamily("flowbot_gaps", "Trade id gaps found, filled by REST, left unfilled",
                                   labels=["symbol", "state"])
        lag = GaugeMetricFamily("flowbot_receive_lag_seconds", "Exchange-to-receive lag of the newest live trade",
                                labels=["symbol"])
        symbols = {symbol: health for feed in self.feeds for symbol, health in feed.symbols.items()}
        for symbol, health in sorted(symbols.items()):
            messages.add_metric([symbol], health.messages)
            trades.add_metric([symbol], health.trades)
            gaps.add_metric([symbol, "found"], health.gaps_found)
            gaps.add_metric([symbol, "filled"], health.gaps_filled)
            gaps.add_metric([symbol, "unfilled"], health.gaps_unfilled)
            if health.lag_ms is not None:
                lag.add_metric([symbol], health.lag_ms / 1000)
        reconnects = CounterMetricFamily("flowbot_reconnects", "WebSocket reconnects", labels=["connection"])
        connected = GaugeMetricFamily("flowbot_feed_connected", "1 while the connection is open",
                                      labels=["connection"])
        age = GaugeMetricFamily("flowbot_feed_last_message_age_seconds", "Seconds since the connection's last message",
                                labels=["connection"])
        event_lag = GaugeMetricFamily("flowbot_event_time_lag_seconds",
                                      "Wall clock minus the connection's event-time watermark: how far behind the "
                                      "market its windows are", labels=["connection"])
        processing_lag = GaugeMetricFamily("flowbot_processing_lag_seconds",
                                           "Receive time minus Binance's event time of the connection's newest trade",
                                           labels=["connection"])
        now = time.time()
        for name, connection in (item for feed in self.feeds for item in feed.connections.items()):
            if (lag_s := connection.event_time_lag_s(now)) is not None:
                event_lag.add_metric([name], lag_s)
            if connection.processing_lag_ms is not None:
                processing_lag.add_metric([name], connection.processing_lag_ms / 1000)
            reconnects.add_metric([name], connection.reconnects)
            connected.add_metric([name], int(connection.connected))
            if connection.last_message_at is not None:
                age.add_metric([name], max(0.0, now - connection.last_message_at))
        yield from (messages, trades, gaps, lag, reconnects, connected, age, event_lag, processing_lag)


class DeliveryCollector(Collector):
    """Alerts sent and failed per platform (Dispatcher.stats) and the outbox's pending rows per platform."""

    def __init__(self) -> None:
        self.dispatchers: list[Stats] = []
        self.outboxes: list[Depth] = []

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily("flowbot_alerts_sent", "Messages sent", labels=["platform"])
        failed = CounterMetricFamily("flowbot_alerts_failed", "Messages given up: rejected, or the destination gone",
                                     labels=["platform", "reason"])
        for dispatcher in self.dispatchers:
            sent.add_metric([dispatcher.platform], dispatcher.stats.get("sent", 0))
            failed.add_metric([dispatcher.platform, "rejected"], dispatcher.stats.get("failed", 0))
            failed.add_metric([dispatcher.platform, "gone"], dispatcher.stats.get("gone", 0))
        depth = GaugeMetricFamily("flowbot_outbox_depth", "Outbox rows waiting to be sent", labels=["platform"])
        pending: dict[str, int] = {dispatcher.platform: 0 for dispatcher in self.dispatchers}
        for outbox in self.outboxes:
            for platform, rows in outbox.depth().items():
                pending[platform] = pending.get(platform, 0) + rows
        for platform, rows in sorted(pending.items()):
            depth.add_metric([platform], rows)
        yield from (sent, failed, depth)


class StoreCollector(Collector):
    """Per store: 1 while its writes fail, and the rows it keeps for a retry (read from StoreHealth at each scrape)."""

    def __init__(self) -> None:
        self.health: list[StoreHealth] = []

    def collect(self) -> Iterator[Metric]:
        failing = GaugeMetricFamily("flowbot_store_failing", "1 while the store cannot write", labels=["store"])
        pending = GaugeMetricFamily("flowbot_store_pending_rows", "Rows kept in memory until the store can write",
                                    labels=["store"])
        for health in self.health:
            for store, problem in sorted(health.problems().items()):
                failing.add_metric([store], 1)
                pending.add_metric([store], problem.pending)
        yield from (failing, pending)


class Metrics:
    """Flowbot's metrics in their own registry; attach the sources a process has, then render() for /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.signals = Counter("flowbot_signals", "Signals emitted", ["symbol", "kind"], registry=self.registry)
        self.ai_requests = Counter("flowbot_ai_requests", "Model calls by provider and outcome",
                                   ["provider", "outcome"], registry=self.registry)
        self.ai_latency = Histogram("flowbot_ai_latency_seconds", "Seconds a model call took", ["provider"],
                                    buckets=AI_LATENCY_BUCKETS, registry=self.registry)
        self.housekeeping_errors = Counter("flowbot_housekeeping_errors", "Engine housekeeping rounds that failed "
                                           "(retried)", ["error"], registry=self.registry)
        self._stores = StoreCollector()
        self.registry.register(self._stores)
        self._feed = FeedCollector()
        self._delivery = DeliveryCollector()
        self._rules = RulesCollector()
        self.registry.register(self._feed)
        self.registry.register(self._delivery)
        self.registry.register(self._rules)

    def watch_feed(self, health: FeedHealth) -> None:
        """A feed's health (MarketFeed.health)."""
        self._feed.feeds.append(health)

    def watch_stores(self, health: StoreHealth) -> None:
        """The stores' health of a process."""
        self._stores.health.append(health)

    def watch_dispatchers(self, dispatchers: Mapping[str, Stats] | Iterable[Stats]) -> None:
        """Dispatchers by platform (BotService.dispatchers) or a list of them."""
        found = dispatchers.values() if isinstance(dispatchers, Mapping) else dispatchers
        self._delivery.dispatchers.extend(found)

    def watch_outbox(self, outbox: Depth) -> None:
        self._delivery.outboxes.append(outbox)

    def watch_rules(self, judge: Judge) -> None:
        """The bot's RuleService."""
        self._rules.judges.append(judge)

    def count_signal(self, signal: Signal) -> None:
        """An on_signal callback: counts the signal by symbol and kind."""
        self.signals.labels(signal.symbol, signal.kind).inc()

    def record_ai(self, attempts: Iterable[Attempt]) -> None:
        """Count a completion's attempts; outcomes keep their class (rejected, error), not their detail."""
        for attempt in attempts:
            self.ai_requests.labels(attempt.provider, attempt.outcome.partition(":")[0]).inc()
            if attempt.outcome != "circuit_open":
                self.ai_latency.labels(attempt.provider).observe(attempt.seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4
