"""InstaVariety OpenPose per-frame JSON tracks (docs/formats/hmmr.md, "Per-frame JSON tracks") ->
track rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidmine.formats import FormatError
from vidmine.formats.instavariety import (
    instavariety_to_track_rows,
    read_instavariety_frame,
    read_instavariety_track,
    read_instavariety_video,
)
from vidmine.tracks import COCO_KEYPOINTS, keypoint_array, read_tracks, write_tracks

# The JSON joint names HMMR reads (docs/formats/hmmr.md, "Per-frame JSON tracks" table, "Head" never
# read).
JSON_NAMES = [
    "R Heel", "R Knee", "R Hip", "L Hip", "L Knee", "L Heel", "R Wrist", "R Elbow",
    "R Shoulder", "L Shoulder", "L Elbow", "L Wrist", "Neck", "Nose", "L Eye", "R Eye",
    "L Ear", "R Ear", "L Big Toe", "R Big Toe", "L Small Toe", "R Small Toe", "L Ankle",
    "R Ankle",
]  # fmt: skip
# The JSON joint each COCO-17 joint is taken from, in COCO order.
COCO_SOURCE = [
    "Nose", "L Eye", "R Eye", "L Ear", "R Ear", "L Shoulder", "R Shoulder", "L Elbow",
    "R Elbow", "L Wrist", "R Wrist", "L Hip", "R Hip", "L Knee", "R Knee", "L Ankle", "R Ankle",
]  # fmt: skip


def _frame_json(frame: int, track_id, shift: float = 0.0) -> dict:
    data = {
        "frame": frame,
        "imloc": f"{frame + 1:06d}.jpg",
        "track_id": track_id,
        "bbox": {"xmin": 10.0, "ymin": 20.0, "xmax": 110.0 + frame, "ymax": 220.0},
    }
    for j, name in enumerate(JSON_NAMES):
        data[name] = {"x": 100.0 + j + shift, "y": 200.0 - j, "logits": 0.5, "probability": None}
    data["MidHip"] = {"x": 1.0, "y": 2.0, "logits": 0.3, "probability": None}  # not used
    data["L Eye"] = {"x": 0.0, "y": 0.0, "logits": 0.0, "probability": None}  # undetected
    return data


def _write_track(folder, frames, track_id):
    folder.mkdir(parents=True)
    for f in frames:  # unpadded names: lexicographic order would put 10 before 2
        (folder / f"{f}.json").write_text(json.dumps(_frame_json(f, track_id, shift=f)))


def test_read_frame_and_track_order(tmp_path):
    _write_track(tmp_path / "dance" / "vid1" / "0", [1, 2, 10], 0)
    frames = read_instavariety_track(tmp_path / "dance" / "vid1" / "0")
    assert [f.frame for f in frames] == [1, 2, 10]
    first = frames[0]
    assert first.imloc == "000002.jpg" and first.bbox == (10.0, 20.0, 111.0, 220.0)
    assert set(JSON_NAMES) <= set(first.joints) and "Head" not in first.joints
    assert first.joints["R Knee"] == (102.0, 199.0, 0.5)


def test_coco_keypoints_come_from_the_joints_of_the_same_name(tmp_path):
    _write_track(tmp_path / "v" / "0", [0, 1], 0)
    _write_track(tmp_path / "v" / "3", [1], 3)
    video = read_instavariety_video(tmp_path / "v")
    assert list(video) == ["0", "3"]
    rows = instavariety_to_track_rows(list(video.values()), "clipI", fps=30)
    assert rows["track_id"].tolist() == [1, 1, 4]  # JSON track ids + 1
    assert rows["frame"].tolist() == [0, 1, 1]
    np.testing.assert_allclose(rows["time"], [0, 1 / 30, 1 / 30])
    kp = keypoint_array(rows)
    for k, source in enumerate(COCO_SOURCE):
        j = JSON_NAMES.index(source)
        if source == "L Eye":
            assert np.isnan(kp[0, k, :2]).all() and kp[0, k, 2] == 0  # (0, 0, 0) = undetected
            continue
        assert kp[1, k].tolist() == [100.0 + j + 1, 200.0 - j, 0.5], COCO_KEYPOINTS[k]
    # COCO ankles are the true ankles, not the heels HMMR stores in its ankle slots
    assert kp[0, 16, 0] == 100 + JSON_NAMES.index("R Ankle")
    assert rows["score"].tolist() == pytest.approx([0.5] * 3)
    assert rows["x2"].tolist() == [110.0, 111.0, 111.0]
    write_tracks(rows, tmp_path / "t.parquet")  # fits the track-table schema
    assert len(read_tracks(tmp_path / "t.parquet")) == 3


def test_bad_input_gives_one_line_errors_naming_the_file(tmp_path):
    path = tmp_path / "0.json"
    data = _frame_json(0, 0)
    del data["bbox"]
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=rf"^{path}: missing keys \['bbox'\]"):
        read_instavariety_frame(path)
    path.write_text(json.dumps(_frame_json(0, 0))[:-40])
    with pytest.raises(FormatError, match=f"^{path}: not readable JSON") as err:
        read_instavariety_frame(path)
    assert "\n" not in str(err.value)
    data = _frame_json(0, 0)
    data["R Knee"] = {"x": 1.0}
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=f"^{path}: joint 'R Knee' needs x, y and logits"):
        read_instavariety_frame(path)
    with pytest.raises(FormatError, match="no per-frame .json files"):
        read_instavariety_track(tmp_path / "missing")
    path.write_text(json.dumps(_frame_json(0, "a")))
    frame = read_instavariety_frame(path)
    with pytest.raises(FormatError, match="track_id 'a' is not a non-negative integer"):
        instavariety_to_track_rows([[frame]], "c", fps=25)
