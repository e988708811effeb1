"""Signals: one module per kind under `kinds/`, a registry that finds them, and detectors that run them."""
