"""Watches a process's StoreHealth: each change is published on the bus (the bot side tells admins), and a store
that reached its bound of unwritten rows stops the process with the reason."""

from __future__ import annotations

import asyncio
import logging

from core.events import StoreHealthChanged
from core.store_health import StoreHealth, StoreStalled
from engine.bus import EventBus

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 1.0


async def watch_stores(health: StoreHealth, bus: EventBus, interval: float = WATCH_INTERVAL_S) -> None:
    """Publish StoreHealthChanged for each store that starts or stops failing; StoreStalled when one is stalled."""
    failing: dict[str, str] = {}
    while True:
        await asyncio.sleep(interval)
        if health.stalled is not None:
            raise StoreStalled(health.stalled)
        now = {name: problem.reason for name, problem in health.problems().items()}
        for store, reason in now.items():
            if store not in failing:
                log.error("%s cannot write (%s); its rows are kept and retried", store, reason)
                bus.publish(StoreHealthChanged(store, False, reason))
        for store in failing.keys() - now.keys():
            log.warning("%s writes again; everything it kept is written", store)
            bus.publish(StoreHealthChanged(store, True, "writes again"))
        failing = now
