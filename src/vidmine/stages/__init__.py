"""Pipeline stages, one folder each (``docs/architecture.md``): ``items.py`` selects a shard's
items from the stages before it, ``stage.py`` processes one item and returns an ``ItemResult``,
and where a stage has them, ``backends``, ``gather.py`` (its dataset-level table) and
``report.py`` (its report items). The registry (:mod:`vidmine.registry`) says how they connect;
the shard runner (:mod:`vidmine.runner`) does everything around one item.
"""
