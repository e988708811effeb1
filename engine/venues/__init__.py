"""Exchanges the feed can stream from, one folder each, behind engine.venues.base.Venue."""
