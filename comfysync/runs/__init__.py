"""Durable runs: the record of every accepted generation, and where it is kept."""
