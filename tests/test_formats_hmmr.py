"""HMMR / InstaVariety tfrecords (FORMATS.md 4.4), written without TensorFlow."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from vidmine.formats import FormatError
from vidmine.formats.hmmr import (
    coco_to_hmmr,
    hmmr_labels,
    read_hmmr_tfrecord,
    track_to_hmmr_example,
    write_hmmr_tfrecord,
)
from vidmine.tracks import COCO_KEYPOINTS

# FORMATS.md 4.4, key -> list type, written out from the table.
COMMON = {
    "meta/N": "int64",
    "meta/has_3d": "int64",
    "meta/has_3d_joints": "int64",
    "mosh/shape": "float",
    "mosh/poses": "float",
    "mosh/gt3ds": "float",
    "image/cams": "float",
    "image/filenames": "bytes",
    "image/heightwidths": "int64",
    "image/xys": "float",
    "image/visibilities": "int64",
    "image/face_pts": "float",
    "image/toe_pts": "float",
    "image/centers": "int64",
    "image/scale_factors": "float",
    "image/crop_pts": "int64",
    "image/encoded": "bytes",
}
TRAIN_WITH_PHI = {**COMMON, "image/phis": "float"}
TEST = {**COMMON, "meta/time_pts": "int64"}
# FORMATS.md 4.2 joint table: HMMR index of each COCO joint (by name); the rest are unmapped.
HMMR_INDEX_OF_COCO = {
    "nose": 14,
    "left_eye": 15,
    "right_eye": 16,
    "left_ear": 17,
    "right_ear": 18,
    "left_shoulder": 9,
    "right_shoulder": 8,
    "left_elbow": 10,
    "right_elbow": 7,
    "left_wrist": 11,
    "right_wrist": 6,
    "left_hip": 3,
    "right_hip": 2,
    "left_knee": 4,
    "right_knee": 1,
    "left_ankle": 23,
    "right_ankle": 24,
}
UNMAPPED = [0, 5, 12, 13, 19, 20, 21, 22]  # heels, neck, head, toes


def _track(n: int = 3, h: int = 200, w: int = 300):
    """Frames with a white dot on the nose; a standing person's worth of COCO joints."""
    base = np.array(
        [
            [150, 60], [145, 55], [155, 55], [140, 58], [160, 58],  # face
            [130, 80], [170, 80], [125, 105], [175, 105], [122, 130], [178, 130],  # arms
            [138, 130], [162, 130], [137, 160], [163, 160], [136, 190], [164, 190],  # legs
        ],
        dtype=np.float32,
    )  # fmt: skip
    frames, kps = [], []
    for t in range(n):
        kp = np.concatenate([base + [4 * t, 0], np.full((17, 1), 0.9, np.float32)], axis=1)
        kp[4, 2] = 0.05  # right ear below the visibility threshold
        img = np.zeros((h, w, 3), np.uint8)
        x, y = np.round(kp[0, :2]).astype(int)
        img[y - 2 : y + 3, x - 2 : x + 3] = 255
        frames.append(img)
        kps.append(kp)
    kps = np.stack(kps)
    boxes = np.stack([[k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()] for k in kps])
    return frames, kps, boxes


def test_coco_to_hmmr_maps_joints_by_name():
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, 0] = np.arange(17) * 10 + 1
    kp[0, :, 1] = np.arange(17) + 0.5
    kp[0, :, 2] = 1.0
    out = coco_to_hmmr(kp)
    assert out.shape == (1, 25, 3)
    for name, h in HMMR_INDEX_OF_COCO.items():
        k = COCO_KEYPOINTS.index(name)
        assert out[0, h].tolist() == [k * 10 + 1, k + 0.5, 1.0], name
    np.testing.assert_array_equal(out[0, UNMAPPED], 0)
    kp[0, 3, 2] = 0.05
    kp[0, 4, :2] = np.nan
    vis = coco_to_hmmr(kp)[0, :, 2]
    assert vis[17] == 0 and vis[18] == 0 and vis[14] == 1  # low score, NaN, visible


@pytest.mark.parametrize(("mode", "expected"), [("train", TRAIN_WITH_PHI), ("test", TEST)])
def test_example_keys_types_and_lengths(tmp_path, mode, expected):
    frames, kps, boxes = _track()
    n = len(frames)
    phis = np.ones((n, 2048), np.float32) if mode == "train" else None
    example = track_to_hmmr_example(frames, kps, boxes, mode=mode, phis=phis)
    path = tmp_path / "t.tfrecord"
    assert write_hmmr_tfrecord(path, [example]) == 1
    (back,) = read_hmmr_tfrecord(path)
    assert set(back) == set(expected)
    for key, kind in expected.items():
        got = (
            "bytes"
            if isinstance(back[key], list)
            else {"float32": "float", "int64": "int64"}[back[key].dtype.name]
        )
        assert got == kind, key
    lengths = {key: len(back[key]) for key in back}
    assert lengths["meta/N"] == 1 and int(back["meta/N"][0]) == n
    assert lengths["mosh/shape"] == 10 and np.all(back["mosh/shape"] == -1)
    assert lengths["mosh/poses"] == n * 72 and np.all(back["mosh/poses"] == -1)
    assert lengths["mosh/gt3ds"] == n * 14 * 3 and np.all(back["mosh/gt3ds"] == 0)
    assert lengths["image/cams"] == n * 3
    assert back["image/heightwidths"].tolist() == [224, 224] * n
    assert lengths["image/xys"] == n * 2 * 14 and lengths["image/visibilities"] == n * 14
    assert lengths["image/face_pts"] == n * 3 * 5 and lengths["image/toe_pts"] == n * 3 * 6
    assert lengths["image/centers"] == n * 2 and lengths["image/crop_pts"] == n * 2
    assert lengths["image/encoded"] == n and lengths["image/filenames"] == n
    assert int(back["meta/has_3d"][0]) == 0 and int(back["meta/has_3d_joints"][0]) == 0
    if mode == "train":
        assert lengths["image/scale_factors"] == 2 * n and lengths["image/phis"] == n * 2048
    else:
        assert lengths["image/scale_factors"] == n
        assert back["meta/time_pts"].tolist() == [0, n]
    img = cv2.imdecode(np.frombuffer(back["image/encoded"][0], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (224, 224, 3)


def test_labels_match_the_crop_and_train_labels_are_normalised():
    frames, kps, boxes = _track()
    test = track_to_hmmr_example(frames, kps, boxes, mode="test")
    train = track_to_hmmr_example(frames, kps, boxes, mode="train")
    px, norm = hmmr_labels(test), hmmr_labels(train)
    assert px.shape == norm.shape == (3, 25, 3)
    for t in range(3):
        img = cv2.imdecode(np.frombuffer(test["image/encoded"][t], np.uint8), cv2.IMREAD_COLOR)
        ys, xs = np.nonzero(img[:, :, 1] > 128)
        # the white dot drawn at the nose is where the nose label is (HMMR nose = 14)
        assert abs(xs.mean() - px[t, 14, 0]) < 1.5 and abs(ys.mean() - px[t, 14, 1]) < 1.5
        visible = px[t, :, 2] > 0
        extent = px[t, visible, :2].max(axis=0) - px[t, visible, :2].min(axis=0)
        assert np.hypot(*extent) == pytest.approx(150, abs=0.5)  # HMMR's 150 px diagonal
    vis = px[:, :, 2:3]
    np.testing.assert_allclose(norm[:, :, :2], (2 * px[:, :, :2] / 224 - 1) * vis, atol=1e-5)
    np.testing.assert_array_equal(norm[:, :, 2], px[:, :, 2])
    assert px[0, 18, 2] == 0 and np.all(norm[:, 18, :2] == 0)  # the low-score right ear
    assert np.all(norm[:, UNMAPPED] == 0)
    assert norm[:, :, :2].min() >= -1 and norm[:, :, :2].max() <= 1


def test_round_trip_of_several_examples(tmp_path):
    frames, kps, boxes = _track(4)
    examples = [
        track_to_hmmr_example(frames, kps, boxes, filenames=[f"v/{i}.jpg" for i in range(4)]),
        track_to_hmmr_example(frames[:2], kps[:2], boxes[:2], mode="test", time_pts=(5, 7)),
    ]
    path = tmp_path / "x.tfrecord"
    write_hmmr_tfrecord(path, examples)
    back = read_hmmr_tfrecord(path)
    assert len(back) == 2
    for a, b in zip(back, examples, strict=True):
        assert set(a) == set(b)
        for key in a:
            if isinstance(b[key], list):
                assert a[key] == b[key], key
            else:
                np.testing.assert_allclose(a[key], np.asarray(b[key]).reshape(-1), err_msg=key)
    assert back[0]["image/filenames"][3] == b"v/3.jpg"
    assert back[1]["meta/time_pts"].tolist() == [5, 7]


def test_framing_agrees_with_the_tfrecord_package(tmp_path):
    reader = pytest.importorskip("tfrecord.reader")
    writer = pytest.importorskip("tfrecord.writer")
    frames, kps, boxes = _track(2)
    path = tmp_path / "x.tfrecord"
    write_hmmr_tfrecord(path, [track_to_hmmr_example(frames, kps, boxes)] * 2)
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    assert raw[8:12] == writer.TFRecordWriter.masked_crc(raw[:8])
    assert raw[12 + length : 16 + length] == writer.TFRecordWriter.masked_crc(raw[12 : 12 + length])
    records = list(reader.example_loader(str(path), None))
    assert len(records) == 2
    ours = read_hmmr_tfrecord(path)[0]
    np.testing.assert_array_equal(records[0]["image/xys"], ours["image/xys"])
    assert records[1]["meta/N"].tolist() == [2]


def test_tensorflow_reads_the_file_with_hmmrs_feature_spec(tmp_path):
    tf = pytest.importorskip(
        "tensorflow", reason="TensorFlow is not installed (the tfrecord test checks framing)"
    )
    frames, kps, boxes = _track(2)
    path = tmp_path / "x.tfrecord"
    write_hmmr_tfrecord(path, [track_to_hmmr_example(frames, kps, boxes)])
    kinds = {"int64": tf.int64, "float": tf.float32, "bytes": tf.string}
    spec = {k: tf.io.VarLenFeature(kinds[v]) for k, v in COMMON.items()}
    spec["mosh/shape"] = tf.io.FixedLenFeature((10,), tf.float32)
    (raw,) = list(tf.data.TFRecordDataset(str(path)))
    parsed = tf.io.parse_single_example(raw, spec)
    xys = tf.sparse.to_dense(parsed["image/xys"]).numpy()
    assert xys.shape == (2 * 2 * 14,)
    img = tf.image.decode_jpeg(tf.sparse.to_dense(parsed["image/encoded"])[0]).numpy()
    assert img.shape == (224, 224, 3)


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    frames, kps, boxes = _track(2)
    good = tmp_path / "good.tfrecord"
    write_hmmr_tfrecord(good, [track_to_hmmr_example(frames, kps, boxes)])
    data = good.read_bytes()
    cases = {
        "truncated.tfrecord": (data[:-10], "truncated"),
        "flipped.tfrecord": (data[:40] + bytes([data[40] ^ 1]) + data[41:], "checksum mismatch"),
        "junk.tfrecord": (b"not a tfrecord at all", "bad length checksum"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(FormatError, match=message) as err:
            read_hmmr_tfrecord(path)
        assert str(err.value).startswith(f"{path}: record 0: ") and "\n" not in str(err.value)


def test_writer_rejects_wrong_keys_and_lengths(tmp_path):
    frames, kps, boxes = _track(2)
    example = track_to_hmmr_example(frames, kps, boxes)
    path = tmp_path / "x.tfrecord"
    with pytest.raises(FormatError, match=r"unknown keys \['image/toes_pts'\]"):
        write_hmmr_tfrecord(path, [{**example, "image/toes_pts": [1.0]}])  # the doc's typo
    short = dict(example)
    short["mosh/poses"] = np.zeros(72, np.float32)
    with pytest.raises(FormatError, match=r"example 1: mosh/poses has 72 values, expected 144"):
        write_hmmr_tfrecord(path, [example, short])
    del short["image/encoded"]
    with pytest.raises(FormatError, match=r"missing \['image/encoded'\]"):
        write_hmmr_tfrecord(path, [short])
    assert not path.exists()
    with pytest.raises(FormatError, match="lengths must match"):
        track_to_hmmr_example(frames, kps[:1], boxes)
