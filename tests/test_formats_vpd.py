"""VPD pose folders and crop file names (docs/formats/vpd.md, "Pose directory", "Crops")."""

from __future__ import annotations

import base64
import gzip
import io
import json

import numpy as np
import pytest
from PIL import Image

from vidmine.formats import FormatError
from vidmine.formats.vpd import (
    VpdMask,
    VpdPose,
    crop_file_names,
    encode_mask_png,
    read_vpd_boxes,
    read_vpd_keypoints,
    read_vpd_masks,
    read_vpd_pose,
    tracks_to_vpd,
    vpd_keypoint_scores,
    write_vpd_pose,
)
from vidmine.tracks import read_tracks, write_tracks


def _pose_data():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (17, 3)).astype(np.float32)
    kp[:, 2] = rng.uniform(0, 1, 17)
    mask = np.zeros((30, 20), bool)  # (h, w)
    mask[5:25, 4:16] = True
    mask[0, 0] = True
    boxes = {3: (10.0, 20.5, 20.0, 30.0), 1: (11.0, 21.0, 19.0, 29.0)}
    keypoints = {
        1: [VpdPose(0.9, (11.0, 21.0, 19.0, 29.0), kp)],
        3: [VpdPose(0.8, (10.0, 20.5, 20.0, 30.0), kp), VpdPose(0.4, (0, 0, 5, 5), kp * 0)],
    }
    masks = {3: [VpdMask(0.95, (10, 20, 20, 30), mask)]}
    return boxes, keypoints, masks


def test_crop_file_names():
    assert crop_file_names(12) == {
        "rgb": "12.png",
        "prev": "12.prev.png",
        "mask": "12.mask.png",
        "flow": "12.flow.png",
    }
    names = crop_file_names(7, num_prev=3, flow_name="flow_raft")
    assert names["prev2"] == "7.prev2.png" and names["prev3"] == "7.prev3.png"
    assert names["flow"] == "7.flow_raft.png"
    with pytest.raises(FormatError):
        crop_file_names(-1)


def test_pose_folder_files_have_vpds_layout(tmp_path):
    boxes, keypoints, masks = _pose_data()
    folder = tmp_path / "pose" / "video_0_10_20"
    write_vpd_pose(folder, boxes, keypoints, masks)
    assert sorted(p.name for p in folder.iterdir()) == [
        "boxes.json",
        "coco_keypoints.json.gz",
        "mask.json.gz",
    ]
    box_json = json.loads((folder / "boxes.json").read_text())
    assert box_json == [[1, [11.0, 21.0, 19.0, 29.0]], [3, [10.0, 20.5, 20.0, 30.0]]]
    with gzip.open(folder / "coco_keypoints.json.gz", "rt", encoding="ascii") as fh:
        kp_json = json.load(fh)
    assert [row[0] for row in kp_json] == [1, 3] and len(kp_json[1][1]) == 2
    score, box, points = kp_json[1][1][0]
    assert score == 0.8 and box == [10.0, 20.5, 20.0, 30.0]
    assert len(points) == 17 and all(len(p) == 3 for p in points)
    np.testing.assert_allclose(points, keypoints[3][0].keypoints, atol=1e-3)
    with gzip.open(folder / "mask.json.gz", "rt", encoding="ascii") as fh:
        mask_json = json.load(fh)
    ((frame, [(score, box, png_b64)]),) = mask_json
    assert (frame, score, box) == (3, 0.95, [10, 20, 20, 30])
    assert "\n" in png_b64  # base64.encodebytes wraps lines
    img = Image.open(io.BytesIO(base64.decodebytes(png_b64.encode())))
    assert img.mode == "1" and img.size == (20, 30)  # PIL size is (w, h)
    decoded = np.array(img)
    assert decoded.dtype == bool
    np.testing.assert_array_equal(decoded, masks[3][0].mask)
    # VPD indexes the frame with the bool mask at the integer box.
    frame_px = np.arange(100 * 100).reshape(100, 100)
    x, y, w, h = box
    assert frame_px[y : y + h, x : x + w][decoded].size == masks[3][0].mask.sum()


def test_pose_folder_round_trip(tmp_path):
    boxes, keypoints, masks = _pose_data()
    write_vpd_pose(tmp_path, boxes, keypoints, masks)
    b, k, m = read_vpd_pose(tmp_path)
    assert b == {1: boxes[1], 3: boxes[3]}
    assert list(k) == [1, 3] and [p.score for p in k[3]] == [0.8, 0.4]
    np.testing.assert_allclose(k[3][0].keypoints, keypoints[3][0].keypoints, atol=1e-3)
    assert k[3][1].box == (0.0, 0.0, 5.0, 5.0)
    assert list(m) == [3] and m[3][0].box == (10, 20, 20, 30)
    np.testing.assert_array_equal(m[3][0].mask, masks[3][0].mask)
    # readers also take the file paths, and the keypoint reader the flat <video>.json.gz
    flat = tmp_path / "flat.json.gz"
    flat.write_bytes((tmp_path / "coco_keypoints.json.gz").read_bytes())
    assert list(read_vpd_keypoints(flat)) == [1, 3]
    assert read_vpd_boxes(tmp_path / "boxes.json") == b


def test_empty_masks_still_write_the_file_and_nan_keypoints_become_zero(tmp_path):
    kp = np.full((17, 3), np.nan, np.float32)
    kp[0] = [5, 6, 0.7]
    write_vpd_pose(tmp_path, {0: (0, 0, 1, 1)}, {0: [VpdPose(1.0, (0, 0, 1, 1), kp)]})
    assert read_vpd_masks(tmp_path) == {}
    pts = read_vpd_keypoints(tmp_path)[0][0].keypoints
    assert pts[0].tolist() == pytest.approx([5, 6, 0.7]) and np.all(pts[1:] == 0)


def test_tracks_to_vpd(tmp_path):
    mask = np.zeros((101, 21), bool)  # integer box of x 10.5..30.2, y 20.7..120.4
    mask[10:90, 3:18] = True

    def row(frame, track, mask_png, interpolated=False):
        kp = np.tile([[20.0, 70.0, 0.9]], (17, 1)) + frame
        return {
            "clip_id": "c",
            "frame": frame,
            "time": frame / 30,
            "track_id": track,
            "class_id": 1,
            "class_name": "person",
            "x1": 10.5,
            "y1": 20.7,
            "x2": 30.2,
            "y2": 120.4,
            "score": 0.0 if interpolated else 0.9,
            "keypoints": kp.reshape(-1).tolist(),
            "interpolated": interpolated,
            "mask_png": mask_png,
        }

    rows = [row(0, 1, encode_mask_png(mask)), row(1, 1, None, True), row(0, 2, None)]
    write_tracks(rows, tmp_path / "c.parquet")
    boxes, poses, masks = tracks_to_vpd(read_tracks(tmp_path / "c.parquet"), 1)
    assert list(boxes) == [0, 1] and boxes[0] == pytest.approx((10.5, 20.7, 19.7, 99.7))
    assert [len(poses[f]) for f in (0, 1)] == [1, 1] and poses[1][0].score == 0.0
    assert list(masks) == [0] and masks[0][0].box == (10, 20, 21, 101)
    np.testing.assert_array_equal(masks[0][0].mask, mask)
    write_vpd_pose(tmp_path / "v", boxes, poses, masks)
    np.testing.assert_array_equal(read_vpd_masks(tmp_path / "v")[0][0].mask, mask)
    with pytest.raises(FormatError, match="no person track 7"):
        tracks_to_vpd(read_tracks(tmp_path / "c.parquet"), 7)


def test_vpd_keypoint_scores_pass_vpds_gate_for_a_detected_person_seen_from_the_chest_up():
    """VPD's gate is np.mean(kp[:, 2]) >= 0.5 (apply_vipe_model.py, single_frame.py)."""
    upper_body = np.r_[np.ones(7), np.zeros(10)].astype(np.float32)  # BlazePose: legs unseen
    assert upper_body.mean() < 0.5  # what VPD dropped
    assert vpd_keypoint_scores(upper_body, 0.82).mean() >= 0.5
    assert vpd_keypoint_scores(upper_body * 0.5, 0.3).mean() < 0.5  # a doubtful detection
    assert vpd_keypoint_scores(upper_body, 0.0).mean() < 0.5  # a row the tracker filled in
    scores = vpd_keypoint_scores(np.linspace(0, 1, 17, dtype=np.float32), 0.9)
    assert (np.diff(scores) > 0).all() and scores.max() <= 1  # order and range kept


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    boxes, keypoints, masks = _pose_data()
    write_vpd_pose(tmp_path, boxes, keypoints, masks)
    kp_file = tmp_path / "coco_keypoints.json.gz"
    kp_file.write_bytes(kp_file.read_bytes()[:30])
    with pytest.raises(FormatError, match=f"^{kp_file}: not readable JSON") as err:
        read_vpd_keypoints(tmp_path)
    assert "\n" not in str(err.value)
    box_file = tmp_path / "boxes.json"
    box_file.write_text(json.dumps({"0": [1, 2, 3, 4]}))
    with pytest.raises(FormatError, match=f"^{box_file}: top level is dict"):
        read_vpd_boxes(tmp_path)
    box_file.write_text(json.dumps([[0, [1, 2, 3]]]))
    with pytest.raises(FormatError, match=f"^{box_file}: frame 0: box"):
        read_vpd_boxes(tmp_path)
    # An 8-bit mask would be misused by VPD as an integer index: refused.
    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(buf, format="PNG")
    mask_file = tmp_path / "mask.json.gz"
    with gzip.open(mask_file, "wt", encoding="ascii") as fh:
        json.dump([[0, [[0.9, [0, 0, 3, 2], base64.encodebytes(buf.getvalue()).decode()]]]], fh)
    with pytest.raises(FormatError, match=f"^{mask_file}: frame 0: mask PNG has mode 'L'"):
        read_vpd_masks(tmp_path)


def test_writer_rejects_mask_box_mismatch(tmp_path):
    bad = {0: [VpdMask(0.9, (0, 0, 4, 4), np.ones((4, 5), bool))]}
    with pytest.raises(FormatError, match=r"mask \(4, 5\) does not match box \[0, 0, 4, 4\]"):
        write_vpd_pose(tmp_path, {}, {}, bad)
    with pytest.raises(FormatError, match="boxes.json: frame 2: box"):
        write_vpd_pose(tmp_path, {2: (0, 0, float("nan"), 1)}, {})


def test_features_pickle_round_trips_and_loads_with_plain_pickle(tmp_path):
    """VPD reads ``<video>.emb.pkl`` with ``pickle.load``: a list of (frame, ndarray, dict)
    tuples sorted by frame, nothing of vidmine needed to unpickle it."""
    import pickle

    from vidmine.formats.vpd import VpdFeature, features_path, read_vpd_features, write_vpd_features

    path = features_path(tmp_path, "clip-t001")
    rows = [
        VpdFeature(5, np.ones((2, 4)), {"kp_score": 0.9, "is_mean": False, "is_flip": False}),
        VpdFeature(2, np.zeros((2, 4)), {"kp_score": 0.7, "is_mean": False, "is_flip": False}),
    ]
    write_vpd_features(path, rows)
    assert path.name == "clip-t001.emb.pkl"
    raw = pickle.loads(path.read_bytes())  # what VPD's util/io.py load_pickle does
    assert isinstance(raw, list) and [type(r) for r in raw] == [tuple, tuple]
    assert [r[0] for r in raw] == [2, 5] and raw[0][1].dtype == np.float32
    back = read_vpd_features(path)
    assert [f.frame for f in back] == [2, 5]
    np.testing.assert_array_equal(back[1].embedding, np.ones((2, 4), np.float32))
    assert back[0].meta["kp_score"] == 0.7
    assert b"numpy._core" not in path.read_bytes()  # numpy 1.x can load it


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"a": 1}, "expected a list"),
        ([(0, np.zeros(3))], "entry 0 is not"),
        ([(-1, np.zeros(3), {})], "not a frame number"),
        ([(0, np.zeros(3, np.int64), {})], "not a 1-D/2-D float array"),
        ([(0, np.zeros(3), {}), (1, np.zeros(4), {})], "embedding width 4, earlier 3"),
    ],
)
def test_features_reader_names_the_file_and_entry(tmp_path, payload, message):
    import pickle

    from vidmine.formats import FormatError
    from vidmine.formats.vpd import read_vpd_features

    path = tmp_path / "bad.emb.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(FormatError, match=message) as err:
        read_vpd_features(path)
    assert str(path) in str(err.value)


def test_features_reader_refuses_code(tmp_path):
    import os
    import pickle

    from vidmine.formats import FormatError
    from vidmine.formats.vpd import read_vpd_features

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    path = tmp_path / "evil.emb.pkl"
    path.write_bytes(pickle.dumps([(0, np.zeros(2), {"x": Evil()})]))
    with pytest.raises(FormatError, match="refused to unpickle"):
        read_vpd_features(path)
    assert not (tmp_path / "ran").exists()
