"""Webhooks: a run's end (and, if asked, its progress) told to a receiver, reliably.

`target` reads what a request asks for, `outbox` makes the deliveries that
go into the run store with the run's change, `signing` signs them the
Standard Webhooks way, and `sender` delivers them, retrying across restarts.
"""
