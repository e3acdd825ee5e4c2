"""What each stage costs, from a finished dataset's own timing tables: CPU-job seconds per
hour of video that reached the stage, and disk per hour of downloaded video per zone.

Every shard job records the seconds of each item in ``status/{stage}/timings/{shard}.parquet``
(``vidmine.layout``); this joins them with the clip table, so the figures are measured on the
dataset's own videos and hardware, not estimated. Run it on a dataset of the kind you mean to
mine (resolution and people per frame drive detection and blur); the demo's videos are small.

    .venv/bin/python benchmarks/stage_costs.py results/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ZONES = ("private/videos", "private/clips", "work", "clips", "tracks", "crops", "flow",
         "trackverse", "export", "lifter")  # fmt: skip


def item_seconds_of_video(clips: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds of video per clip id, and per video id (its clips' end: the part cut)."""
    duration = (clips["end_time"] - clips["start_time"]).astype(float)
    per_clip = dict(zip(clips["clip_id"], duration, strict=True))
    per_video = clips.groupby("video_id")["end_time"].max().astype(float).to_dict()
    return per_clip, per_video


def video_seconds_of(item: str, per_clip: dict, per_video: dict) -> float:
    """The video an item covers: a clip, a video, or a track (``<clip>-tNNN``) of a clip."""
    if item in per_clip:
        return per_clip[item]
    if item in per_video:
        return per_video[item]
    clip = item.rsplit("-t", 1)[0]
    return per_clip.get(clip, 0.0)


def stage_costs(root: Path) -> pd.DataFrame:
    clips = pd.read_parquet(root / "clips.parquet")
    per_clip, per_video = item_seconds_of_video(clips)
    rows = []
    for folder in sorted((root / "status").glob("*/timings")):
        tables = [pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
        timings = pd.concat(
            [t for t in tables if len(t)] or [pd.DataFrame(columns=["id", "seconds"])]
        )
        if timings.empty:
            continue
        video = sum(video_seconds_of(i, per_clip, per_video) for i in timings["id"])
        work = float(timings["seconds"].sum())
        rows.append(
            {
                "stage": folder.parent.name,
                "items": len(timings),
                "job_seconds": round(work, 1),
                "video_seconds": round(video, 1),
                "job_hours_per_video_hour": round(work / video, 2) if video else None,
            }
        )
    return pd.DataFrame(rows)


def disk_per_video_hour(root: Path) -> pd.DataFrame:
    clips = pd.read_parquet(root / "clips.parquet")
    hours = float(clips.groupby("video_id")["end_time"].max().sum()) / 3600
    rows = []
    for zone in ZONES:
        size = sum(p.stat().st_size for p in (root / zone).rglob("*") if p.is_file())
        rows.append(
            {
                "zone": zone,
                "MB": round(size / 1e6, 2),
                "GB_per_video_hour": round(size / 1e9 / hours, 2) if hours else None,
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path, help="results/<dataset>")
    args = parser.parse_args(argv)
    print(stage_costs(args.dataset_dir).to_string(index=False))
    print()
    print(disk_per_video_hour(args.dataset_dir).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
