"""The crops and flow stages on a real clip with a hand-made track table, without Snakemake (one
fixture for both: flow runs on the crops the crops stage wrote)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vidmine.formats.track_crops import load_track_crops
from vidmine.formats.track_flow import load_flow
from vidmine.layout import DatasetLayout
from vidmine.stages.crops.geometry import crop_window
from vidmine.stages.crops.stage import CropsStage
from vidmine.stages.flow.stage import FlowStage
from vidmine.tracks import write_tracks

CROPS = {"size": 64, "pad": 0.1, "smooth": True, "min_track_frames": 2, "masks": True}


def row(frame, track_id, box, class_name="person"):
    return {
        "clip_id": "carphone-c000",
        "frame": frame,
        "time": frame / 30.0,
        "track_id": track_id,
        "class_id": 1 if class_name == "person" else 3,
        "class_name": class_name,
        "x1": box[0],
        "y1": box[1],
        "x2": box[2],
        "y2": box[3],
        "score": 0.9,
        "keypoints": [0.0] * 51 if class_name == "person" else None,
        "interpolated": False,
        "mask_png": None,
    }


@pytest.fixture
def clip(tmp_path, demo_videos):
    layout = DatasetLayout(tmp_path / "results", "demo")
    released = layout.released_clips("s00000") / "carphone-c000.mp4"
    released.parent.mkdir(parents=True)
    shutil.copy(demo_videos["carphone"], released)
    rows = [row(f, 1, (40.0 + f, 20.0, 120.0 + f, 140.0)) for f in range(10)]
    rows += [row(f, 2, (150.0, 100.0, 200.0, 160.0)) for f in range(5)]  # leaves the frame
    rows += [row(3, 3, (10.0, 10.0, 10.0, 50.0))]  # zero area, one frame
    rows += [row(f, 4, (0.0, 0.0, 30.0, 30.0), "car") for f in range(5)]  # not a person
    tracks = layout.tracks("s00000") / "carphone-c000.parquet"
    write_tracks(rows, tracks)
    item = {
        "id": "carphone-c000",
        "tracks": str(tracks.relative_to(layout.root)),
        "released": str(released.relative_to(layout.root)),
    }
    return layout, item


def test_crops_stage_writes_one_file_per_person_track_and_skips_bad_ones(clip):
    layout, item = clip
    result = CropsStage(layout, "s00000", {**CROPS, "classes": ["person"]}).process(item)
    assert result.status == "ok"
    by_track = {r["track_id"]: r for r in result.rows}
    assert set(by_track) == {1, 2, 3}  # the car is not cropped
    assert by_track[1]["n_crops"] == 10 and by_track[2]["n_crops"] == 5
    assert by_track[3]["n_crops"] == 0 and "1 frame" in by_track[3]["reason"]
    assert len(result.outputs) == 2
    track = load_track_crops(layout.root / by_track[1]["path"])
    # frame 5: box (45, 20, 125, 140) unioned with frame 4's (44, 20, 124, 140) -> 81 x 120
    assert tuple(track.windows[5]) == tuple(crop_window((45, 20, 125, 140), (44, 20, 124, 140)))
    assert track.crops.shape == (10, 64, 64, 3) and track.prev_frames[5] == 4
    edge = load_track_crops(layout.root / by_track[2]["path"])
    assert (edge.windows[:, 2] > 176).all()  # the window reaches past the frame: black there
    assert edge.crops[0, :, -2:].max() == 0


@pytest.mark.parametrize("backend", ["dis", "raft"])
def test_flow_stage_gives_a_flow_per_crop_pair(clip, backend):
    layout, item = clip
    crops = CropsStage(layout, "s00000", {**CROPS, "classes": ["person"]}).process(item)
    settings = {"backend": backend, "dis": {"preset": "fast"}}
    settings["raft"] = {"model": "small", "weights": "none", "iters": 2, "batch_size": 4}
    stage = FlowStage(layout, "s00000", settings)
    result = stage.process({"id": item["id"], "crops": crops.outputs})
    assert result.status == "ok" and len(result.outputs) == 2
    flow, frames = load_flow(layout.root / result.outputs[0])
    assert flow.shape == (10, 64, 64, 2) and frames.tolist() == list(range(10))
    assert np.isfinite(flow).all()
    if backend == "dis":  # the person moves right by 1 px a frame inside a moving window
        assert result.rows[0]["mean_magnitude"] < 5
