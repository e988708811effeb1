"""Binance spot and USD-M futures as a venue (venue.BinanceVenue); its formats are also read by replay."""
