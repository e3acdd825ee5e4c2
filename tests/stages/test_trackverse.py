"""The TrackVerse stage on hand-made track tables (records, filters, progress file) and the
curation of its index into TrackVerse's subsets, without Snakemake."""

from __future__ import annotations

import json

import pytest

from conftest import dataset_settings
from vidmine.formats.trackverse import V1_KEYS, build_index, load_index, read_jsonl_gzip
from vidmine.stages.trackverse.curation import select_subset, subset_names
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


def test_records_keep_trackverses_filters_and_absolute_times(layout, videos):
    stage = TrackVerseStage(layout, "s00000", dataset_settings()["trackverse"])
    result = stage.process({"id": "vidA", "clips": videos["vidA"]})
    assert result.status == "ok" and result.fields == {"n_records": 2}
    meta, progress = (layout.root / path for path in result.outputs)
    assert meta.name == "vidA-meta.jsonl.gzip" and meta.parent.name == "vi"
    records = read_jsonl_gzip(meta)
    assert [tuple(r) for r in records] == [V1_KEYS, V1_KEYS]
    person, car = records  # segments in time order: c000 (0 s) before c001 (5 s)
    assert person["top10_desc"] == ["person"] and car["top10_desc"] == ["car"]
    assert person["track_ts"][0] == 0.0 and car["track_ts"][0] == 5.0
    assert person["track_bbox"][1] == [1.0, 0.0, 200.0, 200.0]  # x, y, w, h at frame 1
    assert person["video_size"] == [H, W]
    assert progress.read_text().splitlines() == ["vidA-0.00-5.00", "vidA-5.00-10.00"]
    assert sorted((r["clip_id"], r["track_id"]) for r in result.rows) == [
        ("vidA-c000", 1),
        ("vidA-c001", 1),
    ]


def test_subsets_select_index_lines_as_trackverse_names_them(layout, videos, tmp_path):
    settings = dataset_settings()["trackverse"]
    stage = TrackVerseStage(layout, "s00000", settings)
    metas = [
        layout.root / stage.process({"id": video, "clips": clips}).outputs[0]
        for video, clips in videos.items()
    ]
    index_path = tmp_path / "COCO-index.jsonl.gzip"
    assert build_index(metas + metas, index_path) == 3  # repeated records dropped by fn
    index = load_index(index_path)
    curation = {"random": [2], "class_balanced": [1], "video_balanced": [1], "seed": 0}
    names = subset_names("COCO", curation)
    assert names == ["COCO-RND-2", "COCO-CB1", "COCO-VB1"]
    chosen = {name: select_subset(name, index, curation) for name in names}
    assert len(chosen["COCO-RND-2"]) == 2
    lines = index.set_index("line")
    picked = lines.loc[chosen["COCO-CB1"]]
    assert sorted(picked["class"]) == ["car", "person"]
    # one person per class: the most confident (vidA's, 0.9, over vidB's 0.8)
    assert picked[picked["class"] == "person"].yid.tolist() == ["vidA"]
    assert sorted(lines.loc[chosen["COCO-VB1"]].yid) == ["vidA", "vidB"]
    assert json.loads(lines.loc[chosen["COCO-VB1"][0], "text"])["fn"]
