"""How long the report's items take, and how big they are, for a large dataset.

Builds a synthetic dataset of N videos with the project's own writers (the manifest, every
stage's status tables, the per-shard clip, score, face and audit tables, the gathered clip
table, download report and track table), then runs each table-reading report command
(``vidmine report-...``, in this process) and prints its seconds and output size; first for
1,000 videos, then for 10,000 (by default), and the ratio of the two.

    .venv/bin/python benchmarks/report_scale.py                  # 1k and 10k videos
    .venv/bin/python benchmarks/report_scale.py --videos 20000 --base 2000

    .venv/bin/python benchmarks/report_scale.py --pixels-from results/demo

Bound (issue 20): the report items of 10k videos build in under a minute and under 50 MB.
The items that draw released pixels (report-blur, report-detect, report-flow) need clip,
track-row, crop and flow files: with ``--pixels-from`` a finished dataset (default
``results/demo`` when it exists) lends them, its released clip, face, track and crop rows
copied under new clip ids to as many clips as the synthetic dataset has videos (its own files
linked in); without one only report-detect's track-length picture is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.cli import main as vidmine  # noqa: E402
from vidmine.io import write_table_atomic  # noqa: E402
from vidmine.layout import DatasetLayout  # noqa: E402
from vidmine.manifest import read_manifest, write_manifest  # noqa: E402
from vidmine.registry import STAGES  # noqa: E402
from vidmine.runner import status_table  # noqa: E402
from vidmine.sources import SourceRecord  # noqa: E402
from vidmine.tables import (  # noqa: E402
    AUDIT,
    CLIPS,
    CROP_TABLE,
    DOWNLOAD_REPORT,
    FACES,
    RELEASED,
    SCORES,
    TRACK_TABLE,
)

SHARD_SIZE = 200
FRAMES_PER_CLIP = 20  # face rows per clip (the blur writes one per frame; fewer keeps it quick)
DOWNLOAD_REASONS = ("HTTP Error 404: Not Found", "Video unavailable", "Private video")
FILTER_FLAGS = ("dark", "blurry", "static", "cartoon")


def entry(item_id: str, status: str, reason: str = "", **fields) -> dict:
    return {
        "id": item_id,
        "status": status,
        "reason": reason,
        "seconds": 1.0,
        "outputs": [],
        "settings_hash": "x",
        "fields": fields,
    }


def build(results: Path, videos: int, seed: int = 0) -> DatasetLayout:
    """A dataset of ``videos`` videos: 90% download, 1-6 shots each of which most become clips,
    the filter drops a fifth of the clips, the audit 2%, detection finds 0-3 tracks a clip."""
    rng = np.random.default_rng(seed)
    layout = DatasetLayout(results, "big")
    records = [
        SourceRecord(raw_id=f"v{i:06d}", url=f"https://x.org/{i}.mp4") for i in range(videos)
    ]
    write_manifest(records, "urls", SHARD_SIZE, layout.manifest)
    manifest = read_manifest(layout.manifest)
    all_clips, report_rows, tracks = [], [], []
    for shard, group in manifest.groupby("shard"):
        statuses: dict[str, list[dict]] = {s.name: [] for s in STAGES}
        clips, scores, faces, audit = [], [], [], []
        for video in group.itertuples():
            vid = video.video_id
            if rng.random() < 0.1:
                reason = DOWNLOAD_REASONS[int(rng.integers(len(DOWNLOAD_REASONS)))]
                statuses["download"].append(entry(vid, "failed", reason))
                report_rows.append((vid, shard, video.url, "failed", reason, 0))
                continue
            statuses["download"].append(entry(vid, "ok"))
            statuses["probe"].append(entry(vid, "ok"))
            report_rows.append((vid, shard, video.url, "ok", "", int(rng.integers(1e6, 1e8))))
            bounds = np.cumsum(rng.integers(30, 600, size=int(rng.integers(1, 7))))
            shots = [[int(a), int(b)] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]
            kept = [s for s in shots if s[1] - s[0] >= 50]
            dropped = [[a, b, "shorter than min_seconds"] for a, b in shots if b - a < 50]
            status = "ok" if kept else "dropped"
            statuses["scenecut"].append(
                entry(vid, status, "" if kept else "no clip", shots=shots, dropped=dropped)
            )
            for index, (start, end) in enumerate(kept):
                clip_id = f"{vid}-c{index:03d}"
                clips.append(
                    {
                        "clip_id": clip_id,
                        "video_id": vid,
                        "shard": shard,
                        "index": index,
                        "start_frame": start,
                        "end_frame": end,
                        "n_frames": end - start,
                        "start_time": start / 30,
                        "end_time": end / 30,
                        "fps": 30.0,
                        "width": 640,
                        "height": 360,
                        "has_audio": False,
                        "path": f"private/clips/{vid}/{clip_id}.mp4",
                    }
                )
                values = rng.random(8)
                drop = values[0] < 0.2
                flag = FILTER_FLAGS[int(rng.integers(len(FILTER_FLAGS)))] if drop else ""
                scores.append(
                    {
                        "clip_id": clip_id,
                        "video_id": vid,
                        "flat_fraction": values[1],
                        "flat_edge": values[2],
                        "saturated_fraction": values[3],
                        "sharpness": 500 * values[4],
                        "luma": 255 * values[5],
                        "contrast": 80 * values[6],
                        "motion": 5 * values[7],
                        "short_side": 360.0,
                        "cartoon_score": values[2],
                        "aesthetic_score": np.nan,
                        "n_sampled": 8,
                        "flags": flag,
                        "decision": "drop" if drop else "keep",
                    }
                )
                if drop:
                    statuses["filter"].append(entry(clip_id, "dropped", flag))
                    continue
                statuses["filter"].append(entry(clip_id, "ok"))
                statuses["blur"].append(entry(clip_id, "ok"))
                for frame in range(FRAMES_PER_CLIP):
                    n = int(rng.poisson(0.3))
                    boxes = [[10.0, 10.0, 40.0, 40.0, 0.9]] * n
                    faces.append(
                        {
                            "frame": frame,
                            "n_faces": n,
                            "n_carried": 0,
                            "max_score": 0.9 if n else 0.0,
                            "boxes": boxes,
                            "clip_id": clip_id,
                        }
                    )
                released = rng.random() >= 0.02
                audit.append(
                    {
                        "clip_id": clip_id,
                        "residual_frames": 0 if released else 3,
                        "max_residual_score": 0.0 if released else 0.8,
                        "found_by": "" if released else "scrfd:3",
                        "action": "clean" if released else "dropped",
                        "residual_frames_after": 0 if released else 3,
                        "found_by_after": "" if released else "scrfd:3",
                    }
                )
                statuses["audit"].append(
                    entry(clip_id, "ok")
                    if released
                    else entry(clip_id, "dropped", "residual faces after re-blur")
                )
                statuses["detect"].append(entry(clip_id, "ok"))
                for track_id in range(int(rng.integers(0, 4))):
                    tracks.append(track_row(clip_id, vid, shard, track_id, rng))
                if released:
                    statuses["crops"].append(entry(clip_id, "ok"))
                    statuses["flow"].append(entry(clip_id, "ok"))
        for name in {e["id"].split("-c")[0] for e in statuses["detect"]}:
            statuses["trackverse"].append(entry(name, "ok"))
        for stage, entries in statuses.items():
            write_table_atomic(status_table(entries), layout.status(stage, shard))
        CLIPS.write(CLIPS.frame(clips) if clips else [], layout.table("clips", shard))
        SCORES.write(SCORES.frame(scores) if scores else [], layout.table("scores", shard))
        FACES.write(FACES.frame(faces) if faces else [], layout.table("faces", shard))
        AUDIT.write(AUDIT.frame(audit) if audit else [], layout.table("audit", shard))
        all_clips += clips
    CLIPS.write(CLIPS.frame(all_clips), layout.clip_table)
    columns = ["video_id", "shard", "url", "status", "reason", "bytes"]
    report = [dict(zip(columns, row, strict=True)) for row in report_rows]
    for row in report:
        row.update(raw_id=row["video_id"], split=None, label=None)
    DOWNLOAD_REPORT.write(report, layout.root / "download_report.parquet")
    TRACK_TABLE.write(tracks, layout.root / "tracks.parquet")
    return layout


def track_row(clip_id: str, vid: str, shard: str, track_id: int, rng) -> dict:
    n = int(rng.integers(30, 300))
    return {
        "clip_id": clip_id,
        "video_id": vid,
        "track_id": track_id,
        "class_id": 1,
        "class_name": "person",
        "start_frame": 0,
        "end_frame": n,
        "n_rows": n,
        "n_detected": n,
        "seconds": n / 30,
        "mean_score": 0.8,
        "mean_keypoint_score": 0.7,
        "mean_area": 5000.0,
        "motion": 1.0,
        "embedding": [],
        "shard": shard,
        "path": f"tracks/{clip_id}.parquet",
        "fn": "",
    }


PIXEL_FOLDERS = ("clips", "tracks", "crops", "flow")


def lend_pixels(layout: DatasetLayout, donor: Path, videos: int) -> Path:
    """The donor dataset's released clip, face, track and crop rows, copied under new clip ids
    to about ``videos`` released clips (in ``pixels/``), its pixel folders linked in."""
    for folder in PIXEL_FOLDERS:
        (layout.root / folder).symlink_to((donor / folder).resolve(), target_is_directory=True)
    released = RELEASED.read(donor / "released_clips.parquet")
    copies = max(1, round(videos / max(len(released), 1)))

    def many(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat(
            [frame.assign(clip_id=frame.clip_id + f"-r{k}") for k in range(copies)],
            ignore_index=True,
        )

    folder = layout.root / "pixels"
    folder.mkdir()
    RELEASED.write(many(released), folder / "released_clips.parquet")
    TRACK_TABLE.write(many(TRACK_TABLE.read(donor / "tracks.parquet")), folder / "tracks.parquet")
    CROP_TABLE.write(many(CROP_TABLE.read(donor / "crops.parquet")), folder / "crops.parquet")
    faces = FACES.concat(sorted((donor / "tables" / "faces").glob("*.parquet")))
    FACES.write(many(faces), folder / "faces.parquet")
    return folder


def commands(layout: DatasetLayout, out: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """Each report command's argument list and its outputs, as report.smk calls them."""
    root = layout.root
    shards = sorted(read_manifest(layout.manifest).shard.unique())
    status = [str(layout.status("scenecut", s)) for s in shards]

    def tables(name: str) -> list[str]:
        return [str(layout.table(name, s)) for s in shards]

    filter_settings = json.dumps(
        {"min_sharpness": 50, "min_motion": 0.2, "min_contrast": 10, "min_luma": 20}
    )
    o = {name: out / name for name in (
        "funnel.html", "funnel.png", "download_summary.html", "clips.html", "shots.png",
        "filter.html", "filter_scores.png", "audit.html", "track_examples.png",
        "track_lengths.png",
    )}  # fmt: skip
    found = {
        "report-funnel": (
            ["--dataset-dir", str(root), "--html", str(o["funnel.html"]),
             "--png", str(o["funnel.png"])],
            [o["funnel.html"], o["funnel.png"]],
        ),
        "report-download": (
            ["--download-report", str(root / "download_report.parquet"),
             "--out", str(o["download_summary.html"])],
            [o["download_summary.html"]],
        ),
        "report-scenecut": (
            ["--clips", str(layout.clip_table), "--clips-html", str(o["clips.html"]),
             "--shots-png", str(o["shots.png"]), *status],
            [o["clips.html"], o["shots.png"]],
        ),
        "report-filter": (
            ["--settings", filter_settings, "--scores", *tables("scores"),
             "--filter-html", str(o["filter.html"]), "--scores-png", str(o["filter_scores.png"])],
            [o["filter.html"], o["filter_scores.png"]],
        ),
        "report-audit": (
            ["--audit", *tables("audit"), "--faces", *tables("faces"),
             "--out", str(o["audit.html"])],
            [o["audit.html"]],
        ),
        "track lengths": (
            [str(root / "tracks.parquet"), str(o["track_lengths.png"])],
            [o["track_lengths.png"]],
        ),
    }  # fmt: skip
    pixels = root / "pixels"
    if pixels.is_dir():
        released = str(pixels / "released_clips.parquet")
        o.update({name: out / name for name in ("blur_examples.png", "crops_flow.png")})
        del found["track lengths"]
        found["report-blur"] = (
            [
                "--dataset-dir",
                str(root),
                "--released",
                released,
                "--faces",
                str(pixels / "faces.parquet"),
                "--out",
                str(o["blur_examples.png"]),
            ],
            [o["blur_examples.png"]],
        )
        found["report-detect"] = (
            [
                "--dataset-dir",
                str(root),
                "--tracks",
                str(pixels / "tracks.parquet"),
                "--released",
                released,
                "--examples-png",
                str(o["track_examples.png"]),
                "--lengths-png",
                str(o["track_lengths.png"]),
            ],
            [o["track_examples.png"], o["track_lengths.png"]],
        )
        found["report-flow"] = (
            [
                "--dataset-dir",
                str(root),
                "--crops",
                str(pixels / "crops.parquet"),
                "--out",
                str(o["crops_flow.png"]),
            ],
            [o["crops_flow.png"]],
        )
    return found  # fmt: skip


def run_all(layout: DatasetLayout, out: Path) -> dict[str, tuple[float, int]]:
    """Seconds and output bytes of each report command."""
    from vidmine.stages.detect.report import track_length_histogram
    from vidmine.tables import TRACK_TABLE

    out.mkdir(parents=True, exist_ok=True)
    measured = {}
    for name, (args, outputs) in commands(layout, out).items():
        start = time.perf_counter()
        if name == "track lengths":  # report-detect's table item (its examples need pixels)
            track_length_histogram(TRACK_TABLE.read(args[0]), args[1])
        elif vidmine([name, *args]) != 0:
            raise SystemExit(f"{name} failed")
        measured[name] = (time.perf_counter() - start, sum(p.stat().st_size for p in outputs))
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--base", type=int, default=1_000, help="the smaller run to compare")
    parser.add_argument(
        "--pixels-from",
        type=Path,
        default=REPO / "results" / "demo",
        help="a finished dataset that lends its pixel files (default: results/demo, if built)",
    )
    args = parser.parse_args()
    donor = args.pixels_from if (args.pixels_from / "released_clips.parquet").exists() else None
    print(f"pixel items: {'from ' + str(donor) if donor else 'not run (no donor dataset)'}")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        # a small run first, so neither measured run pays for the first imports
        warm = build(Path(tmp) / "warm-up", 50)
        if donor:
            lend_pixels(warm, donor, 50)
        run_all(warm, Path(tmp) / "warm-up-report")
        for videos in (args.base, args.videos):
            start = time.perf_counter()
            layout = build(Path(tmp) / f"results{videos}", videos)
            if donor:
                lend_pixels(layout, donor, videos)
            print(
                f"{videos:,} videos: synthetic tables built in {time.perf_counter() - start:.1f} s"
            )
            runs[videos] = run_all(layout, Path(tmp) / f"report{videos}")
    small, big = runs[args.base], runs[args.videos]
    print(f"\n{'item':<18}{args.base:>10,} s{args.videos:>9,} s{'ratio':>7}"
          f"{args.base:>10,} kB{args.videos:>8,} kB{'ratio':>7}")  # fmt: skip
    for name in big:
        (s1, b1), (s2, b2) = small[name], big[name]
        print(
            f"{name:<18}{s1:>12.2f}{s2:>11.2f}{s2 / s1:>7.1f}"
            f"{b1 / 1e3:>13.1f}{b2 / 1e3:>11.1f}{b2 / b1:>7.1f}"
        )
    total = {
        v: (sum(s for s, _ in r.values()), sum(b for _, b in r.values())) for v, r in runs.items()
    }
    (s1, b1), (s2, b2) = total[args.base], total[args.videos]
    print(f"{'all items':<18}{s1:>12.2f}{s2:>11.2f}{s2 / s1:>7.1f}"
          f"{b1 / 1e3:>13.1f}{b2 / 1e3:>11.1f}{b2 / b1:>7.1f}")  # fmt: skip
    within = s2 < 60 and b2 < 50e6
    print(f"\n{args.videos:,} videos: {s2:.1f} s, {b2 / 1e6:.2f} MB:"
          f" {'within' if within else 'OVER'} the bound (< 60 s, < 50 MB)")  # fmt: skip
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
