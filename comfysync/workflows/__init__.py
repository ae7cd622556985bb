"""Stored workflow graphs and the changes requests make to them."""
