"""Pipeline stages: each one small class that processes one item and returns an ``ItemResult``.

The shard runner (``vidmine.runner``) does everything around that: skipping, atomic status
tables, progress and failure capture.
"""
