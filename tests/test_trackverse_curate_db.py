"""The TrackVerse export read the way TrackVerse's own curation reads it.

A small dataset (two real clips, hand-made track tables of two classes) goes through the
trackverse stage (records and visual metrics), the index, every sampler and the export. The
export is then read as v1 ``curate_db.py`` (MMPLab/TrackVerse 76338e0, the last commit that
has it) reads its database: the checks of ``Curator.load_tracks``,
``VisualMetricsDB.load_motion`` / ``load_embeddings`` and the subset names of each ``sample_*``
are re-implemented here, each citing its function. Where the mirror of the original repository
exists (and its imports, ``submitit`` included, are installed), the original samplers also run
on a copy of the export and must write the same subsets under the same names.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import copy_demo_video, dataset_settings
from vidmine.exports.trackverse import export_trackverse
from vidmine.runner import run_shard
from vidmine.stages.trackverse.curation import subset_names
from vidmine.stages.trackverse.gather import curate, trackverse_index
from vidmine.stages.trackverse.stage import TrackVerseStage
from vidmine.tables import TRACKVERSE_LINKS
from vidmine.tracks import write_tracks

DOMAIN = "TOY"
CURATION = {
    "random": [1],
    "class_balanced": [1],
    "min_redundancy": [2],  # minimum_redundancy_curator's topk(k=2) needs Nc >= 2
    "max_motion": [1],
    "video_balanced": [1],
    "min_motion": 0.5,
    "seed": 3,
}
MIRROR = Path("/work/.mirror/MMPLab+TrackVerse/repo")
CURATE_DB_COMMIT = "76338e0"  # v1 curate_db.py (deleted by the 2025 "first commit")


def track_rows(clip_id, track_id, frames, box, fps, class_id, class_name, drift=0.0, score=0.9):
    x1, y1, x2, y2 = box
    return [
        {
            "clip_id": clip_id,
            "frame": f,
            "time": f / fps,
            "track_id": track_id,
            "class_id": class_id,
            "class_name": class_name,
            "x1": x1 + drift * f,
            "y1": y1,
            "x2": x2 + drift * f,
            "y2": y2,
            "score": score - 0.001 * track_id,
            "keypoints": None,
            "interpolated": False,
            "mask_png": None,
        }
        for f in frames
    ]


def clip_entry(layout, demo_videos, video, fps, width, height, n_frames, rows):
    clip_id = f"{video}-c000"
    path = copy_demo_video(demo_videos, video, layout.private_clips("s00000") / f"{clip_id}.mp4")
    tracks = layout.tracks("s00000") / f"{clip_id}.parquet"
    write_tracks(rows, tracks)
    return {
        "clip_id": clip_id,
        "video_id": video,
        "start_time": 1.0,
        "end_time": 1.0 + n_frames / fps,
        "n_frames": n_frames,
        "fps": fps,
        "width": width,
        "height": height,
        "path": str(path.relative_to(layout.root)),
        "tracks": str(tracks.relative_to(layout.root)),
    }


@pytest.fixture(scope="module")
def database(tmp_path_factory, demo_videos):
    """(dataset folder, export folder): records, metrics, index, subsets, export."""
    from vidmine.layout import DatasetLayout

    layout = DatasetLayout(tmp_path_factory.mktemp("results"), "toy")
    car_fps, bikes_fps = 30000 / 1001, 25.0
    carphone = track_rows(
        "carphone-c000", 1, range(0, 100, 2), (20, 10, 150, 140), car_fps, 1, "person"
    )
    carphone += track_rows("carphone-c000", 2, range(10, 90), (0, 30, 120, 144), car_fps, 3, "car")
    bikes = track_rows(
        "bikes-c000", 1, range(0, 200, 3), (100, 20, 300, 260), bikes_fps, 1, "person", 1.5
    )
    bikes += track_rows("bikes-c000", 2, range(50, 150), (300, 40, 600, 270), bikes_fps, 3, "car")
    bikes += track_rows("bikes-c000", 3, range(0, 60), (350, 0, 550, 272), bikes_fps, 1, "person")
    clips = {
        "carphone": clip_entry(layout, demo_videos, "carphone", car_fps, 176, 144, 120, carphone),
        "bikes": clip_entry(layout, demo_videos, "bikes", bikes_fps, 640, 272, 250, bikes),
    }
    items = [{"id": video, "clips": [clip]} for video, clip in clips.items()]
    settings = dataset_settings(trackverse={"domain": DOMAIN, "min_track_seconds": 1.0})
    stage = TrackVerseStage(layout, "s00000", settings["trackverse"])
    status = layout.status("trackverse", "s00000")
    links = layout.table("trackverse", "s00000")
    run_shard(stage, items, status, layout.root, links, table=TRACKVERSE_LINKS)
    subsets = layout.trackverse_subsets
    index = subsets / f"{DOMAIN}-index.jsonl.gzip"
    assert trackverse_index(layout.root, [status], index) == 5
    for name in subset_names(DOMAIN, CURATION):
        curate(index, layout.root, [status], name, CURATION, subsets / f"{name}.jsonl.gzip")
    out = tmp_path_factory.mktemp("export") / "trackverse"
    export_trackverse(layout.root, out, DOMAIN, CURATION)
    return layout.root, out


def lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return [line for line in handle]


# --- curate_db.py's reader, re-implemented ----------------------------------------------


def softmax(x, temperature=1.0):
    """curate_db.softmax."""
    x = np.array(x)
    e_x = np.exp((x - np.max(x)) / temperature)
    return e_x / e_x.sum()


def load_tracks(index_file: Path) -> dict[str, list]:
    """curate_db.Curator.load_tracks: the keys, indexing and conversions it applies per line
    (tid = line number, dedupe by fn, class from top10_desc[0] parsed, logit = top10_wcls[0][0],
    conf from the softmax of top10_wcls[0], track_ts / track_bbox as arrays)."""
    tracks = {k: [] for k in ("tid", "fn", "yid", "class", "logit", "conf", "ts", "bbox")}
    seen = set()
    for tid, line in enumerate(gzip.open(index_file)):
        data = json.loads(line)
        if data["fn"] in seen:
            continue
        seen.add(data["fn"])
        top10_probs = softmax(data["top10_wcls"][0], temperature=0.1)  # KeyError before
        tracks["tid"].append(tid)
        tracks["fn"].append(data["fn"])
        tracks["yid"].append(data["yid"])
        label = data["top10_desc"][0].replace("photo of a ", "").split(" (also")[0]
        tracks["class"].append(label)
        tracks["logit"].append(data["top10_wcls"][0][0])
        tracks["conf"].append(top10_probs[0] - top10_probs[1])  # IndexError on 1-entry lists
        tracks["ts"].append(np.array(data["track_ts"]))
        tracks["bbox"].append(np.array(data["track_bbox"]))
    return tracks


def load_motion(base: Path, fn: str) -> dict[str, float]:
    """curate_db.VisualMetricsDB.load_motion, without its silent fallback to 0 (a missing file
    must fail here, not read as a still track)."""
    path = base / "tracks_motion" / DOMAIN / fn.replace(".mp4", ".npy")
    flow_stats = np.load(path).reshape(-1, 7).mean(0)
    return {"q50": flow_stats[-4], "q75": flow_stats[-3], "q90": flow_stats[-2]}


def load_embedding(base: Path, fn: str) -> np.ndarray:
    """curate_db.VisualMetricsDB.load_embeddings (its fallback, np.randn, does not exist)."""
    return np.load(base / "tracks_embeddings" / DOMAIN / fn.replace(".mp4", ".npy"))


def test_index_loads_as_curate_db_loads_it(database):
    _, out = database
    tracks = load_tracks(out / "tracks_subsets" / f"{DOMAIN}-index.jsonl.gzip")
    assert sorted(tracks["class"]) == ["car", "car", "person", "person", "person"]
    assert all(0 < c <= 1 for c in tracks["conf"])  # the winning class over a "no class" slot
    assert all(0 < logit <= 1 for logit in tracks["logit"])
    for ts, bbox in zip(tracks["ts"], tracks["bbox"], strict=True):
        assert ts.ndim == 1 and bbox.shape == (len(ts), 4)
        assert (np.diff(ts) > 0).all()
    # constrained_sampling groups tracks of one video by fn[3:14] (the 11-char YouTube id)
    assert all(fn[3:].startswith(yid) for fn, yid in zip(tracks["fn"], tracks["yid"], strict=True))


def test_visual_metrics_load_as_visual_metrics_db_loads_them(database):
    _, out = database
    fns = load_tracks(out / "tracks_subsets" / f"{DOMAIN}-index.jsonl.gzip")["fn"]
    q90 = [load_motion(out, fn)["q90"] for fn in fns]
    assert all(np.isfinite(q) and q >= 0 for q in q90)
    assert max(q90) > 0.5  # the drifting bikes person moves; TrackVerse's default bar is 0
    embeddings = [load_embedding(out, fn) for fn in fns]
    assert {(e.dtype.name, e.shape) for e in embeddings} == {("float32", (768,))}
    # minimum_redundancy_curator: stacked as tensors, torch.cdist between them
    stacked = torch.stack([torch.from_numpy(e) for e in embeddings])
    distances = torch.cdist(stacked, stacked)
    assert torch.isfinite(distances).all() and (distances + torch.eye(len(fns)) > 0).all()
    for metric in ("motion", "embeddings"):
        completed = (out / f"tracks_{metric}" / DOMAIN / "completed.txt").read_text().split()
        assert sorted(completed) == sorted(fns)  # visual_metrics.py's ProgressTracker


def curate_db_subset_names(out: Path) -> set[str]:
    """The file names curate_db.py's samplers write for the configured subsets, formatted as
    they format them (sample_random, sample_class_balanced, sample_min_red,
    sample_max_motion), N = the subset's size."""
    sizes = {}
    for path in (out / "tracks_subsets").iterdir():
        sizes[path.name] = len(lines(path))

    def sized(prefix: str, suffix: str = "") -> str:
        matches = [n for n in sizes if n.startswith(prefix)]
        assert len(matches) == 1, (prefix, sorted(sizes))
        return f"{prefix}{sizes[matches[0]] // 1000}K{suffix}.jsonl.gzip"

    d, temp = DOMAIN, 0.0
    names = {f"{d}-{n}K-RND.jsonl.gzip" for n in CURATION["random"]}
    suffix = f"MinQ90Motion{CURATION['min_motion']:0.1f}"
    names |= {sized(f"{d}-CB{n}-", f"-T{temp}{suffix}") for n in CURATION["class_balanced"]}
    names |= {sized(f"{d}-MinRed-CB{n}-") for n in CURATION["min_redundancy"]}
    names |= {sized(f"{d}-MaxQ90Motion-CB{n}-") for n in CURATION["max_motion"]}
    return names


def test_subsets_carry_curate_db_file_names(database):
    _, out = database
    exported = {p.name for p in (out / "tracks_subsets").iterdir()}
    expected = curate_db_subset_names(out)
    assert expected == {
        "TOY-1K-RND.jsonl.gzip",
        "TOY-CB1-0K-T0.0MinQ90Motion0.5.jsonl.gzip",
        "TOY-MinRed-CB2-0K.jsonl.gzip",
        "TOY-MaxQ90Motion-CB1-0K.jsonl.gzip",
    }
    # plus the index and vidmine's own video-balanced subset (no TrackVerse counterpart)
    assert exported == expected | {"TOY-index.jsonl.gzip", "TOY-VB1.jsonl.gzip"}
    index = lines(out / "tracks_subsets" / "TOY-index.jsonl.gzip")
    for name in expected:  # save_subsets: index lines verbatim, in index order
        subset = lines(out / "tracks_subsets" / name)
        assert subset == [line for line in index if line in subset]
    minred = load_tracks(out / "tracks_subsets" / "TOY-MinRed-CB2-0K.jsonl.gzip")
    assert sorted(minred["class"]) == ["car", "car", "person", "person"]  # 2 per class


def test_max_motion_takes_the_highest_q90_per_class(database):
    _, out = database
    index = out / "tracks_subsets" / "TOY-index.jsonl.gzip"
    tracks = load_tracks(index)
    q90 = {fn: load_motion(out, fn)["q90"] for fn in tracks["fn"]}
    best = {}
    for fn, cls in zip(tracks["fn"], tracks["class"], strict=True):
        if cls not in best or q90[fn] > q90[best[cls]]:
            best[cls] = fn
    subset = [
        json.loads(x)["fn"]
        for x in lines(out / "tracks_subsets" / "TOY-MaxQ90Motion-CB1-0K.jsonl.gzip")
    ]
    assert sorted(subset) == sorted(best.values())


# --- the original code, from the mirror -------------------------------------------------

DRIVER = """
import sys, torch
sys.argv = ["curate_db.py"]
import curate_db

def curator():
    return curate_db.Curator({base!r}, {domain!r}, "tracks_subsets/{domain}-index.jsonl.gzip",
                             num_workers=0)

curator().sample_random({random})
curator().sample_class_balanced({cb}, min_motion={min_motion})
curator().sample_max_motion({max_motion})
# minimum_redundancy_curator torch.stack()s get_emb's numpy arrays and raises TypeError for any
# class with more than Nc tracks, whatever the files hold; get_emb returns a tensor here.
load = curate_db.Curator.get_emb
curate_db.Curator.get_emb = lambda self, tid: torch.from_numpy(load(self, tid))
curator().sample_min_red({min_red})
"""


def original_curate_db(tmp_path: Path) -> Path:
    if not MIRROR.is_dir() or shutil.which("git") is None:
        pytest.skip(f"no mirror of MMPLab/TrackVerse at {MIRROR}")
    missing = [m for m in ("submitit", "tqdm") if find_spec(m) is None]
    if missing:
        pytest.skip(f"curate_db.py imports {', '.join(missing)}, not installed")
    run = tmp_path / "curate_db"
    (run / "assets").mkdir(parents=True)
    for name in ("curate_db.py", "assets/trackverse-verified-6perclass.txt"):
        text = subprocess.run(
            ["git", f"--git-dir={MIRROR}", "show", f"{CURATE_DB_COMMIT}:{name}"],
            capture_output=True,
            check=True,
        ).stdout
        (run / name).write_bytes(text)
    return run


def test_original_curate_db_samplers_write_the_same_subsets(database, tmp_path):
    run = original_curate_db(tmp_path)
    _, out = database
    base = tmp_path / "db"
    shutil.copytree(out, base)
    ours = {p.name: lines(p) for p in (base / "tracks_subsets").iterdir()}
    for path in (base / "tracks_subsets").iterdir():
        if path.name != "TOY-index.jsonl.gzip":
            path.unlink()
    driver = DRIVER.format(
        base=str(base),
        domain=DOMAIN,
        random=CURATION["random"],
        cb=CURATION["class_balanced"],
        min_motion=CURATION["min_motion"],
        max_motion=CURATION["max_motion"],
        min_red=CURATION["min_redundancy"],
    )
    (run / "driver.py").write_text(textwrap.dedent(driver))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(run), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "driver.py"], cwd=run, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = {p.name: lines(p) for p in (base / "tracks_subsets").iterdir()}
    assert set(theirs) == set(ours) - {"TOY-VB1.jsonl.gzip"}
    # deterministic samplers: the same lines (the random shuffle and MinRed's start are not)
    for name in ("TOY-CB1-0K-T0.0MinQ90Motion0.5.jsonl.gzip", "TOY-MaxQ90Motion-CB1-0K.jsonl.gzip"):
        assert theirs[name] == ours[name]
    assert theirs["TOY-1K-RND.jsonl.gzip"] == ours["TOY-1K-RND.jsonl.gzip"]  # 1K: all 5
    minred = "TOY-MinRed-CB2-0K.jsonl.gzip"
    classes = [sorted(json.loads(x)["top10_desc"][0] for x in s[minred]) for s in (theirs, ours)]
    assert classes[0] == classes[1] == ["car", "car", "person", "person"]
    cars = [
        [x for x in s[minred] if json.loads(x)["top10_desc"][0] == "car"] for s in (theirs, ours)
    ]
    assert cars[0] == cars[1]  # a class of <= Nc tracks is kept whole
