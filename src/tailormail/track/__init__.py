"""Tracking: signed links, open pixel, click redirect, unsubscribe, attribution."""
