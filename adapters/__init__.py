"""Tracker adapters, installed as ``sla_sync.adapters``.

One module per tracker; ``base`` holds the ``Tracker`` protocol.  Third-party
trackers register a factory under the entry-point group ``sla_sync.adapters``.
"""
