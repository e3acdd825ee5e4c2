"""Errors several layers raise and the command line turns into one line."""

from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """A backend whose package or weights are missing; the message says which and how to get
    it. Raised when a detector is built, before any clip of a shard is touched."""
