"""What the stages before a stage left for one shard: the input of every ``select_items``.

A stage takes only the items that the stages it reads marked ok (DESIGN.md, stage contract),
and finds their files by the output names the registry declares (``"video"``, ``"tracks"``),
never by position in the status table's ``outputs`` list.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vidmine.layout import DatasetLayout
from vidmine.manifest import read_manifest
from vidmine.registry import spec
from vidmine.runner import ok_items
from vidmine.tables import CLIPS

STATUS_ONLY = ("status", "reason", "outputs", "settings_hash")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, NaN as None (items go into JSON journals)."""
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


class Upstream:
    """One shard's view of the stages before: manifest rows, ok items, the clip table."""

    def __init__(self, layout: DatasetLayout, shard: str):
        self.layout, self.shard = layout, shard

    def manifest(self) -> pd.DataFrame:
        manifest = read_manifest(self.layout.manifest)
        return manifest[manifest.shard == self.shard]

    def ok(self, stage: str) -> pd.DataFrame:
        """Items ``stage`` marked ok, with its fields expanded and each output file under the
        name the registry gives it."""
        frame = ok_items(self.layout.status(stage, self.shard))
        named = [spec(stage).named_outputs(list(outputs)) for outputs in frame["outputs"]]
        for name in spec(stage).outputs:
            column = name.rstrip("*")
            if column in frame.columns:
                raise ValueError(f"{stage}: output name {column!r} is also a field")
            frame[column] = [n[column] for n in named]
        return frame

    def ok_by_id(self, stage: str) -> pd.DataFrame:
        return self.ok(stage).set_index("id")

    def clips(self, passed: str | None = None) -> list[dict[str, Any]]:
        """Clips of the shard (the scene cut's table), only those ``passed`` kept if given."""
        clips = CLIPS.read(self.layout.table("clips", self.shard))
        if passed is not None:
            clips = clips[clips.clip_id.isin(self.ok(passed).id)]
        return [{"id": row["clip_id"], **row} for row in records(clips)]
