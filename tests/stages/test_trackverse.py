"""The TrackVerse stage on hand-made track tables (records, filters, progress file, visual
metrics on real clips) and the curation of its index into TrackVerse's subsets, without
Snakemake. tests/test_trackverse_curate_db.py reads the export as TrackVerse's curate_db.py does."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import dataset_settings
from vidmine.formats.trackverse import (
    NO_CLASS_ID,
    RECORD_KEYS,
    build_index,
    load_index,
    read_jsonl_gzip,
    write_meta,
)
from vidmine.stages.trackverse.curation import curate_db_name, select_subset, subset_names
from vidmine.stages.trackverse.stage import TrackVerseStage
from vidmine.tracks import write_tracks

W, H, FPS = 320, 240, 10.0


def rows(clip_id, track_id, frames, box, class_id=1, class_name="person", score=0.9):
    x1, y1, x2, y2 = box
    return [
        {
            "clip_id": clip_id,
            "frame": f,
            "time": f / FPS,
            "track_id": track_id,
            "class_id": class_id,
            "class_name": class_name,
            "x1": x1 + f,
            "y1": y1,
            "x2": x2 + f,
            "y2": y2,
            "score": score,
            "keypoints": None,
            "interpolated": False,
            "mask_png": None,
        }
        for f in frames
    ]


def clip(layout, video, index, start_time, track_rows):
    clip_id = f"{video}-c{index:03d}"
    path = layout.tracks("s00000") / f"{clip_id}.parquet"
    write_tracks(track_rows, path)
    return {
        "clip_id": clip_id,
        "video_id": video,
        "start_time": start_time,
        "end_time": start_time + 5.0,
        "fps": FPS,
        "width": W,
        "height": H,
        "tracks": str(path.relative_to(layout.root)),
    }


@pytest.fixture
def videos(layout):
    big = (0.0, 0.0, 200.0, 200.0)  # 52 % of the frame
    a0 = rows("vidA-c000", 1, range(40), big)  # 3.9 s: kept
    a0 += rows("vidA-c000", 2, range(20), big)  # 1.9 s: too short
    a0 += rows("vidA-c000", 3, range(40), (0.0, 0.0, 20.0, 20.0))  # 0.5 % of the frame
    a1 = rows("vidA-c001", 1, range(45), big, class_id=3, class_name="car", score=0.6)
    b0 = rows("vidB-c000", 1, range(50), big, score=0.8)
    return {
        "vidA": [clip(layout, "vidA", 1, 5.0, a1), clip(layout, "vidA", 0, 0.0, a0)],
        "vidB": [clip(layout, "vidB", 0, 2.0, b0)],
    }


def records_only():
    return dataset_settings(trackverse={"visual_metrics": False})["trackverse"]


def test_records_keep_trackverses_filters_and_absolute_times(layout, videos):
    stage = TrackVerseStage(layout, "s00000", records_only())
    result = stage.process({"id": "vidA", "clips": videos["vidA"]})
    assert result.status == "ok" and result.fields == {"n_records": 2}
    meta, progress = (layout.root / path for path in result.outputs)
    assert meta.name == "vidA-meta.jsonl.gzip" and meta.parent.name == "vi"
    records = read_jsonl_gzip(meta)
    assert [tuple(r) for r in records] == [RECORD_KEYS, RECORD_KEYS]
    person, car = records  # segments in time order: c000 (0 s) before c001 (5 s)
    assert person["top10_desc"] == ["person"] + [""] * 9 and car["top10_desc"][0] == "car"
    assert person["track_ts"][0] == 0.0 and car["track_ts"][0] == 5.0
    assert person["track_bbox"][1] == [1.0, 0.0, 200.0, 200.0]  # x, y, w, h at frame 1
    assert person["video_size"] == [H, W]
    assert progress.read_text().splitlines() == ["vidA-0.00-5.00", "vidA-5.00-10.00"]
    assert sorted((r["clip_id"], r["track_id"]) for r in result.rows) == [
        ("vidA-c000", 1),
        ("vidA-c001", 1),
    ]


def test_subsets_select_index_lines_as_trackverse_names_them(layout, videos, tmp_path):
    stage = TrackVerseStage(layout, "s00000", records_only())
    metas = [
        layout.root / stage.process({"id": video, "clips": clips}).outputs[0]
        for video, clips in videos.items()
    ]
    index_path = tmp_path / "COCO-index.jsonl.gzip"
    assert build_index(metas + metas, index_path) == 3  # repeated records dropped by fn
    index = load_index(index_path)
    curation = {"random": [1], "class_balanced": [1], "video_balanced": [1], "seed": 0}
    names = subset_names("COCO", curation)
    assert names == ["COCO-1K-RND", "COCO-CB1", "COCO-VB1"]
    chosen = {name: select_subset(name, index, curation) for name in names}
    assert len(chosen["COCO-1K-RND"]) == 3  # 1K: all three
    lines = index.set_index("line")
    picked = lines.loc[chosen["COCO-CB1"]]
    assert sorted(picked["class"]) == ["car", "person"]
    # one person per class: the most confident (vidA's, 0.9, over vidB's 0.8)
    assert picked[picked["class"] == "person"].yid.tolist() == ["vidA"]
    assert sorted(lines.loc[chosen["COCO-VB1"]].yid) == ["vidA", "vidB"]
    assert json.loads(lines.loc[chosen["COCO-VB1"][0], "text"])["fn"]


def test_top10_lists_have_ten_entries_the_unknown_nine_marked_no_class(layout, videos):
    stage = TrackVerseStage(layout, "s00000", records_only())
    meta = layout.root / stage.process({"id": "vidB", "clips": videos["vidB"]}).outputs[0]
    (record,) = read_jsonl_gzip(meta)
    for key in ("top10_lbl", "top10_desc", "top10_logit_mu", "top10_wlogit_std"):
        assert len(record[key]) == 10
    assert record["top10_lbl"] == [1] + [NO_CLASS_ID] * 9
    assert record["top10_logit_mu"] == pytest.approx([0.8] + [0.0] * 9)
    assert record["top10_logit_std"] == pytest.approx([0.0] * 10)
    # the 93dda91 keys v1 curate_db.py reads: [mu_list, std_list]
    mu, std = record["top10_wlogit_mu"], record["top10_wlogit_std"]
    assert record["top10_wcls"] == [mu, std] and record["top10_cls"] == [mu, std]


def test_top10_holds_the_recorded_class_distribution():
    from vidmine.formats.trackverse import track_record
    from vidmine.tracks import COCO_CATEGORIES

    frames = rows("c", 1, range(3), (0.0, 0.0, 50.0, 50.0), class_id=3, class_name="car")
    table = pd.DataFrame(frames)
    distributions = []
    for i in range(3):
        p = np.zeros(91, np.float32)
        p[0], p[3], p[8], p[6], p[12] = 0.05, 0.5 + 0.1 * i, 0.3, 0.04 * i, 0.9  # 12: "N/A"
        distributions.append(p.tolist())
    table["class_scores"] = distributions
    table["score"] = [0.5, 0.6, 0.7]
    record = track_record("vidX", {"start_time": 0.0}, table, (H, W), COCO_CATEGORIES)
    # its own class first, then by mean probability; background (0) and unnamed ids left out
    assert record["top10_lbl"][:3] == [3, 8, 6]
    assert record["top10_desc"][:3] == ["car", "truck", "bus"]
    assert 0 not in record["top10_lbl"] and 12 not in record["top10_lbl"]
    assert record["top10_lbl"][3:] == [1, 2, 4, 5, 7, 9, 10]  # zero probability, id order
    assert record["top10_logit_mu"][:3] == pytest.approx([0.6, 0.3, 0.04])
    assert record["top10_logit_std"][1:3] == pytest.approx([0.0, np.std([0, 0.04, 0.08])], abs=1e-6)
    assert record["fn"].startswith("vi/vidX-car-")


def test_meta_files_carry_no_write_time_so_reruns_are_byte_identical(tmp_path, monkeypatch):
    """gzip writes the clock into each member's header unless told not to."""
    segments = [[{"track_id": 0}], [{"track_id": 1}]]
    write_meta(tmp_path / "a.jsonl.gzip", segments)
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)  # another moment
    write_meta(tmp_path / "b.jsonl.gzip", segments)
    assert (tmp_path / "a.jsonl.gzip").read_bytes() == (tmp_path / "b.jsonl.gzip").read_bytes()
    assert read_jsonl_gzip(tmp_path / "b.jsonl.gzip") == [{"track_id": 0}, {"track_id": 1}]


# --- visual metrics -----------------------------------------------------------------------


def test_track_frames_are_those_of_trackverses_track_clip():
    from vidmine.stages.trackverse.clips import track_frames

    fps = 30000 / 1001
    clip = {"fps": fps, "start_time": 10.0, "n_frames": 300, "width": 640, "height": 360}
    ts = [10.5 + i / 16 for i in range(33)]  # 2.0 s of detections at 16 fps
    boxes = [[100.0 + 2 * i, 50.0, 100.0, 200.0] for i in range(33)]
    frames = track_frames({"fn": "x.mp4", "track_ts": ts, "track_bbox": boxes}, clip)
    n = int(2.0 * fps)  # VideoReader: int(duration * rate) frames from the first detection
    assert frames.clip_frames.tolist() == list(range(15, 15 + n))  # round(0.5 s * fps)
    # VideoDB(frame_rate=16) on a clip written at round(fps) = 30: frame round(j / 16 * 30)
    assert frames.motion_positions == [round(j / 16 * 30) for j in range(int(n / 30 * 16))]
    # x264 gop_size = 30 // 2; the reader repeats each keyframe since the previous one
    assert frames.key_positions == [0, 15, 30, 45] and frames.key_weights == [1, 15, 15, 15]
    # aspect ratio 0.5 grown to 2/3, inside the frame, output size even
    x, y, w, h = frames.windows.T
    assert np.allclose(w / h, 2 / 3) and (x >= 0).all() and (y >= 0).all()
    assert (x + w <= 640 + 1e-6).all() and (y + h <= 360 + 1e-6).all()
    assert frames.out_size == (int(w.mean()) // 2 * 2, int(h.mean()) // 2 * 2)


def test_box_smoothing_is_scipys_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    from vidmine.stages.trackverse.clips import gaussian_smooth

    rng = np.random.default_rng(0)
    for length, sigma in ((80, 10), (5, 10), (30, 1), (12, 0)):
        values = rng.normal(100, 20, length)
        expected = ndimage.gaussian_filter(values, sigma)
        assert np.allclose(gaussian_smooth(values, sigma), expected, atol=1e-9)


def test_motion_is_flow_magnitude_quantiles_per_batch_at_short_side_360():
    from vidmine.optical_flow import DISBackend
    from vidmine.stages.trackverse.metrics import motion_stats

    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (120, 180, 3), np.uint8), (5, 5), 1.5)
    frames = [np.roll(texture, 2 * i, axis=1)[:, 20:-20] for i in range(70)]  # 2 px per frame
    stats = motion_stats(frames, DISBackend("medium"))
    # batches of 32, 32 and 6 frames: 8, 8 and 2 kept pairs, 7 quantiles each
    assert stats.dtype == np.float32 and stats.shape == (21,)
    blocks = stats.reshape(-1, 7)
    assert (np.diff(blocks, axis=1) >= 0).all()
    # 2 px at height 120 is 6 px at the short side 360 TrackVerse resizes to
    assert blocks[:, 3] == pytest.approx([6.0] * 3, abs=0.6)
    assert motion_stats(frames[:1], DISBackend("ultrafast")).shape == (0,)


def metric_clip(layout, demo_videos, video="carphone", damaged=False):
    from conftest import copy_demo_video

    path = layout.private_clips("s00000") / f"{video}-c000.mp4"
    copy_demo_video(demo_videos, video, path)
    if damaged:
        path.write_bytes(b"not a video")
    track = rows(f"{video}-c000", 1, range(0, 90, 3), (20.0, 10.0, 120.0, 130.0))
    track += rows(f"{video}-c000", 2, range(30, 100), (60.0, 40.0, 160.0, 140.0), 3, "car")
    tables = layout.tracks("s00000") / f"{video}-c000.parquet"
    write_tracks(track, tables)
    fps = 30000 / 1001
    return {
        "clip_id": f"{video}-c000",
        "video_id": video,
        "start_time": 0.0,
        "end_time": 120 / fps,
        "n_frames": 120,
        "fps": fps,
        "width": 176,
        "height": 144,
        "path": str(path.relative_to(layout.root)),
        "tracks": str(tables.relative_to(layout.root)),
    }


def test_stage_writes_each_records_motion_and_embedding(layout, demo_videos):
    from vidmine.formats.trackverse import metric_path, read_motion

    clip = metric_clip(layout, demo_videos)
    settings = dataset_settings(trackverse={"min_track_seconds": 1.0})["trackverse"]
    result = TrackVerseStage(layout, "s00000", settings).process({"id": "vidM", "clips": [clip]})
    assert result.fields["n_records"] == 2 and result.fields["n_metric_files"] == 4
    records = read_jsonl_gzip(layout.root / result.outputs[0])
    root = layout.trackverse_dir
    for record in records:
        motion = metric_path(root, "motion", "COCO", record["fn"])
        embedding = metric_path(root, "embeddings", "COCO", record["fn"])
        assert str(motion.relative_to(layout.root)) in result.outputs[2:]
        assert str(embedding.relative_to(layout.root)) in result.outputs[2:]
        stats = np.load(motion)
        assert stats.dtype == np.float32 and stats.ndim == 1 and len(stats) % 7 == 0
        assert (np.diff(stats.reshape(-1, 7), axis=1) >= 0).all()
        assert 0 <= read_motion(motion)["q90"] < 50
        vector = np.load(embedding)
        assert vector.dtype == np.float32 and vector.shape == (768,)
        assert 0 < vector.min() and vector.max() < 1  # mean of 16 x 16 RGB crops in [0, 1]


def test_an_undecodable_clip_keeps_its_records_and_says_why_it_has_no_metrics(layout, demo_videos):
    clip = metric_clip(layout, demo_videos, damaged=True)
    settings = dataset_settings(trackverse={"min_track_seconds": 1.0})["trackverse"]
    result = TrackVerseStage(layout, "s00000", settings).process({"id": "vidM", "clips": [clip]})
    assert result.status == "ok" and result.fields["n_records"] == 2
    assert result.fields["n_metric_files"] == 0 and len(result.outputs) == 2
    assert "carphone-c000" in result.fields["metrics_skipped"]


def test_torchvision_embeddings_load_official_weights_or_none(layout, demo_videos):
    from vidmine.formats.trackverse import metric_path
    from vidmine.stages.trackverse.backends import TorchvisionBackend, torchvision_weights_source
    from vidmine.stages.trackverse.weights import weight_sources

    # what resnet50(pretrained=True) loads, from torchvision's URL through vidmine.weights
    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert torchvision_weights_source("resnet50", "IMAGENET1K_V1") == url
    section = {"visual_metrics": True, "embeddings": {"backend": "torchvision"}}
    assert [s.source for s in weight_sources(section)] == [url]
    assert TorchvisionBackend("resnet18", weights=None).embed(
        [np.zeros((40, 30, 3), np.uint8)]
    ).shape == (1, 512)
    clip = metric_clip(layout, demo_videos)
    embeddings = {"backend": "torchvision", "torchvision": {"weights": "none", "batch_size": 4}}
    settings = dataset_settings(trackverse={"min_track_seconds": 1.0, "embeddings": embeddings})[
        "trackverse"
    ]
    result = TrackVerseStage(layout, "s00000", settings).process({"id": "vidM", "clips": [clip]})
    for record in read_jsonl_gzip(layout.root / result.outputs[0]):
        vector = np.load(metric_path(layout.trackverse_dir, "embeddings", "COCO", record["fn"]))
        assert vector.dtype == np.float32 and vector.shape == (2048,)  # ResNet-50 without fc


# --- curation on the visual metrics ---------------------------------------------------------


def metric_index(tmp_path, tracks):
    """An index of hand-made records and their metric files: tracks = (class, yid, score,
    q90 or None, embedding or None)."""
    from vidmine.formats.trackverse import metric_path, save_motion, save_npy, track_record

    records = []
    for number, (cls, yid, score, q90, embedding) in enumerate(tracks):
        table = pd.DataFrame(rows("c", 1, range(number, number + 3), (0, 0, 9, 9), 1, cls, score))
        record = track_record(yid, {"start_time": 0.0}, table, (H, W))
        records.append(record)
        if q90 is not None:
            block = np.array([0, 0, 0, q90 / 2, q90 / 1.5, q90, 2 * q90], np.float32)
            save_motion(metric_path(tmp_path, "motion", "COCO", record["fn"]), np.tile(block, 2))
        if embedding is not None:
            vector = np.asarray(embedding, np.float32)
            save_npy(metric_path(tmp_path, "embeddings", "COCO", record["fn"]), vector)
    meta = tmp_path / "meta.jsonl.gzip"
    write_meta(meta, [records])
    build_index([meta], tmp_path / "index.jsonl.gzip")
    return load_index(tmp_path / "index.jsonl.gzip", tmp_path, "COCO")


def test_max_motion_and_min_motion_read_tracks_motion(tmp_path):
    index = metric_index(
        tmp_path,
        [
            ("dog", "v1", 0.9, 0.2, None),  # the most confident dog barely moves
            ("dog", "v1", 0.8, 3.0, None),
            ("dog", "v2", 0.7, 5.0, None),
            ("cat", "v2", 0.9, None, None),  # no motion file: motion 0, as TrackVerse reads it
            ("cat", "v3", 0.6, 1.0, None),
        ],
    )
    assert index["motion_q90"].tolist()[:3] == pytest.approx([0.2, 3.0, 5.0])
    assert select_subset("COCO-MaxQ90Motion-CB1", index, {}) == [2, 4]
    assert select_subset("COCO-MaxQ90Motion-CB2", index, {}) == [1, 2, 3, 4]
    # most confident first, but at least q90 1.0: dog 0.8 over dog 0.9, cat 0.6 over cat 0.9
    assert select_subset("COCO-CB1", index, {"min_motion": 1.0}) == [1, 4]
    # too strict: the bar falls x0.8 per round and goes for the last one, so a dog is taken
    assert select_subset("COCO-CB1", index, {"min_motion": 100.0}) == [0, 3]


def test_min_redundancy_reads_tracks_embeddings(tmp_path):
    index = metric_index(
        tmp_path,
        [
            ("dog", "v1", 0.9, None, [0.0, 0.0]),
            ("dog", "v1", 0.8, None, [0.0, 0.0]),  # a duplicate of the first
            ("dog", "v2", 0.7, None, [5.0, 5.0]),
            ("dog", "v3", 0.6, None, None),  # no embedding: left out
            ("cat", "v3", 0.6, None, [1.0, 0.0]),
        ],
    )
    for seed in range(4):
        chosen = select_subset("COCO-MinRed-CB2", index, {"seed": seed})
        assert 2 in chosen and 4 in chosen and 3 not in chosen and len(chosen) == 4 - 1
        assert not {0, 1} <= set(chosen)  # never both duplicates


def test_subset_files_are_named_as_curate_db_names_them():
    curation = {"max_spt_iou": 0.5, "min_motion": 1.0}
    assert curate_db_name("LVIS-184K-RND", 184000, {}) == "LVIS-184K-RND"
    assert curate_db_name("LVIS-CB300", 184321, {}) == "LVIS-CB300-184K-T0.0"
    assert (
        curate_db_name("LVIS-CB300", 184321, curation)
        == "LVIS-CB300-184K-T0.0MaxIoU0.50Bufinf" + "MinQ90Motion1.0"
    )
    tbuff = {"max_spt_iou": 0.25, "iou_tbuff": 2}
    assert curate_db_name("LVIS-CB100", 999, tbuff) == "LVIS-CB100-0K-T0.0MaxIoU0.25Buf2.00"
    assert curate_db_name("LVIS-MinRed-CB500", 259001, {}) == "LVIS-MinRed-CB500-259K"
    assert curate_db_name("LVIS-MaxQ90Motion-CB100", 82000, {}) == "LVIS-MaxQ90Motion-CB100-82K"
    assert curate_db_name("LVIS-VB3", 10, {}) == "LVIS-VB3"  # vidmine's own
    with pytest.raises(ValueError, match="unknown subset"):
        curate_db_name("LVIS-RND-2", 2, {})


def test_spatiotemporal_iou_is_curate_dbs_spt_iou():
    from vidmine.stages.trackverse.curation import spatiotemporal_iou

    box = np.array([[0.0, 0.0, 10.0, 10.0]] * 3)
    early, late = np.array([0.0, 1.0, 2.0]), np.array([6.0, 7.0, 8.0])
    # disjoint in time: the earlier track's last box against the later one's first
    assert spatiotemporal_iou(early, box, late, box, math.inf) == 1.0
    assert spatiotemporal_iou(early, box, late, box, 1.0) == pytest.approx(0.5)  # 1/sqrt(4)
    shifted = box + [5.0, 0.0, 0.0, 0.0]
    overlap = np.array([1.0, 2.0, 3.0])
    assert spatiotemporal_iou(early, box, overlap, shifted, math.inf) == pytest.approx(1 / 3)
