"""The signal kinds: every module of engine.signals.kinds that defines KIND, plus any registered at run time."""

from __future__ import annotations

import importlib
import pkgutil

from core.events import SignalKind
from engine.signals import kinds as kinds_package
from engine.signals.kind import KindSpec

_registered: dict[str, KindSpec] = {}
_ordered: tuple[KindSpec, ...] | None = None  # the registered kinds in order, until the next change


def register(spec: KindSpec) -> KindSpec:
    """Add a kind (the modules of engine.signals.kinds are added on first use)."""
    global _ordered
    _discover()
    if spec.name in _registered:
        raise ValueError(f"signal kind {spec.name!r} is registered twice")
    if "en" not in spec.wording:
        raise ValueError(f"signal kind {spec.name!r} has no English wording")
    _registered[spec.name] = spec
    _ordered = None
    return spec


def unregister(name: str) -> None:
    """Remove a kind added with `register` (a kind tried out for a while, as tests do)."""
    global _ordered
    del _registered[name]
    _ordered = None


def all_kinds() -> tuple[KindSpec, ...]:
    """Every kind, in `order`."""
    global _ordered
    _discover()
    if _ordered is None:
        _ordered = tuple(sorted(_registered.values(), key=lambda spec: (spec.order, spec.name)))
    return _ordered


def kind_names() -> tuple[SignalKind, ...]:
    return tuple(spec.name for spec in all_kinds())


def find(name: str) -> KindSpec | None:
    """The kind called `name`, or None for a name no module declares (an old stored signal, say)."""
    _discover()
    return _registered.get(name)


_discovered = False


def _discover() -> None:
    global _discovered, _ordered
    if _discovered:
        return
    _discovered = True
    for module_info in pkgutil.iter_modules(kinds_package.__path__):
        module = importlib.import_module(f"{kinds_package.__name__}.{module_info.name}")
        spec: KindSpec = module.KIND
        if spec.name in _registered:
            raise ValueError(f"signal kind {spec.name!r} is declared twice")
        _registered[spec.name] = spec
    _ordered = None
