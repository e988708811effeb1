"""Binance spot and USD-M futures."""

from engine.venues.binance.venue import BinanceVenue

__all__ = ["BinanceVenue"]
