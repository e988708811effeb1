"""One module per signal kind, each defining KIND (an engine.signals.kind.KindSpec); the registry finds them."""
