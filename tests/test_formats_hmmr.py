"""HMMR / InstaVariety tfrecords (docs/formats/hmmr.md, "TFRecord layout"), written without
TensorFlow, in HMMR's three layouts: train with precomputed phis (224 crops, [-1, 1] labels,
image/phis), train without (300 crops, pixel labels) and test."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from hmmr_training_input import HmmrWouldFail, read_like_hmmr_training

from vidmine.formats import FormatError
from vidmine.formats.hmmr import (
    coco_to_hmmr,
    hmmr_labels,
    read_hmmr_tfrecord,
    serialize_example,
    track_to_hmmr_example,
    write_hmmr_tfrecord,
)
from vidmine.tracks import COCO_KEYPOINTS

# docs/formats/hmmr.md, "TFRecord layout", key -> list type, written out from the table.
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
# docs/formats/hmmr.md, "Per-frame JSON tracks" joint table: HMMR index of each COCO joint (by
# name); the rest are unmapped.
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
NOSE = 14


def _phis(n: int, seed: int = 0) -> np.ndarray:
    """Stand-in features for the format tests (the encoder's own are tested in
    test_hmr_encoder.py and test_export.py)."""
    return np.random.default_rng(seed).uniform(0.1, 1.0, (n, 2048)).astype(np.float32)


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


@pytest.mark.parametrize(
    ("mode", "precomputed_phi", "expected", "side"),
    [
        ("train", True, TRAIN_WITH_PHI, 224),
        ("train", False, COMMON, 300),
        ("test", True, TEST, 224),
    ],
)
def test_example_keys_types_and_lengths(tmp_path, mode, precomputed_phi, expected, side):
    frames, kps, boxes = _track()
    n = len(frames)
    phis = _phis(n) if mode == "train" and precomputed_phi else None
    example = track_to_hmmr_example(
        frames, kps, boxes, mode=mode, precomputed_phi=precomputed_phi, phis=phis
    )
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
    assert back["image/heightwidths"].tolist() == [side, side] * n
    assert lengths["image/xys"] == n * 2 * 14 and lengths["image/visibilities"] == n * 14
    assert lengths["image/face_pts"] == n * 3 * 5 and lengths["image/toe_pts"] == n * 3 * 6
    assert lengths["image/centers"] == n * 2 and lengths["image/crop_pts"] == n * 2
    assert lengths["image/encoded"] == n and lengths["image/filenames"] == n
    assert int(back["meta/has_3d"][0]) == 0 and int(back["meta/has_3d_joints"][0]) == 0
    if mode == "train":
        assert lengths["image/scale_factors"] == 2 * n
        if precomputed_phi:
            assert lengths["image/phis"] == n * 2048
            np.testing.assert_array_equal(back["image/phis"], phis.reshape(-1))
    else:
        assert lengths["image/scale_factors"] == n
        assert back["meta/time_pts"].tolist() == [0, n]
    img = cv2.imdecode(np.frombuffer(back["image/encoded"][0], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (side, side, 3)


def _dot(jpeg: bytes) -> np.ndarray:
    """(x, y) of the white dot drawn at the nose, in the decoded crop."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ys, xs = np.nonzero(img[:, :, 1] > 128)
    return np.array([xs.mean(), ys.mean()])


def test_labels_match_the_crop_in_each_layout():
    frames, kps, boxes = _track()
    test = track_to_hmmr_example(frames, kps, boxes, mode="test")
    raw = track_to_hmmr_example(frames, kps, boxes, precomputed_phi=False)
    phi = track_to_hmmr_example(frames, kps, boxes, phis=_phis(3))
    px, px300, norm = hmmr_labels(test), hmmr_labels(raw), hmmr_labels(phi)
    assert px.shape == px300.shape == norm.shape == (3, 25, 3)
    for t in range(3):
        # the white dot drawn at the nose is where the nose label is, in pixels of its crop
        np.testing.assert_allclose(_dot(test["image/encoded"][t]), px[t, NOSE, :2], atol=1.5)
        np.testing.assert_allclose(_dot(raw["image/encoded"][t]), px300[t, NOSE, :2], atol=1.5)
        dot = (_dot(phi["image/encoded"][t]) * 2 / 224 - 1) * 1.0
        np.testing.assert_allclose(dot, norm[t, NOSE, :2], atol=1.5 * 2 / 224)
        visible = px[t, :, 2] > 0
        extent = px[t, visible, :2].max(axis=0) - px[t, visible, :2].min(axis=0)
        assert np.hypot(*extent) == pytest.approx(150, abs=0.5)  # HMMR's 150 px diagonal
        # raw: pixels of the 300 crop, the person in its middle (not [-1, 1])
        assert np.all((px300[t, visible, :2] > 50) & (px300[t, visible, :2] < 250))
    vis = px[:, :, 2:3]
    np.testing.assert_allclose(norm[:, :, :2], (2 * px[:, :, :2] / 224 - 1) * vis, atol=1e-5)
    mapped = [h for h in range(25) if h not in UNMAPPED]  # the 300 crop is the 224 one + 38 px
    np.testing.assert_allclose(px300[:, mapped, :2], px[:, mapped, :2] + 38, atol=1e-4)
    assert np.all(px300[:, UNMAPPED] == 0)
    np.testing.assert_array_equal(norm[:, :, 2], px[:, :, 2])
    assert px[0, 18, 2] == 0 and np.all(norm[:, 18, :2] == 0)  # the low-score right ear
    assert np.all(norm[:, UNMAPPED] == 0)
    assert norm[:, :, :2].min() >= -1 and norm[:, :, :2].max() <= 1
    # centres and crop points as HMMR writes them: in / of its 300 crop for both train layouts
    assert raw["image/centers"].tolist() == [150, 150] * 3 == phi["image/centers"].tolist()
    np.testing.assert_array_equal(raw["image/crop_pts"], phi["image/crop_pts"])
    np.testing.assert_array_equal(raw["image/crop_pts"], test["image/crop_pts"] - 224 - 38 + 300)


def test_phi_layout_needs_phis_and_the_raw_layout_takes_none():
    frames, kps, boxes = _track(2)
    with pytest.raises(FormatError, match=r"phi layout needs phis \(2, 2048\), got None"):
        track_to_hmmr_example(frames, kps, boxes)  # HMMR would train on zeros
    with pytest.raises(FormatError, match=r"got \(2, 10\)"):
        track_to_hmmr_example(frames, kps, boxes, phis=np.ones((2, 10), np.float32))
    with pytest.raises(FormatError, match="raw layout takes no phis"):
        track_to_hmmr_example(frames, kps, boxes, precomputed_phi=False, phis=_phis(2))
    encoder_calls = []

    def encoder(crops):
        encoder_calls.append(crops.shape)
        return np.full((len(crops), 2048), 0.5, np.float32)

    example = track_to_hmmr_example(frames, kps, boxes, phis=encoder)
    assert encoder_calls == [(2, 224, 224, 3)] and np.all(example["image/phis"] == 0.5)


def _long_track(n: int = 24):
    frames, kps, boxes = _track(n, w=420)
    return frames, kps, boxes


def test_hmmrs_training_reader_gets_features_and_labels_on_the_person():
    frames, kps, boxes = _long_track()
    phis = _phis(len(frames))
    phi = serialize_example(track_to_hmmr_example(frames, kps, boxes, phis=phis))
    raw = serialize_example(track_to_hmmr_example(frames, kps, boxes, precomputed_phi=False))
    got = read_like_hmmr_training(phi, precomputed_phi=True, start=2)
    assert got["phis"].shape == (20, 2048)
    np.testing.assert_array_equal(got["phis"], phis[2:22])
    assert got["images"].shape == (20, 224, 224, 3) and got["labels"].shape == (20, 25, 3)
    assert got["images"].min() >= -1 and got["images"].max() <= 1
    assert np.abs(got["labels"][:, :, :2]).max() <= 1
    # raw records through HMMR's own augmentor (at zero jitter): the same labels and crops
    aug = read_like_hmmr_training(raw, precomputed_phi=False, start=2)
    np.testing.assert_allclose(aug["labels"], got["labels"], atol=1e-4)
    assert np.abs(aug["images"] - got["images"]).mean() < 0.02  # JPEG noise only
    assert aug["image_sizes"].tolist() == [[300, 300]] * 20
    nose = (got["labels"][:, NOSE, :2] + 1) * 112  # back to pixels of the 224 crop
    for t in range(20):
        ys, xs = np.nonzero(got["images"][t, :, :, 1] > 0)
        assert abs(xs.mean() - nose[t, 0]) < 1.5 and abs(ys.mean() - nose[t, 1]) < 1.5


def test_hmmrs_training_reader_fails_on_each_defect():
    frames, kps, boxes = _long_track()
    n = len(frames)
    good = track_to_hmmr_example(frames, kps, boxes, phis=_phis(n))
    # no image/phis: HMMR's process_tensors fills zeros; the check the tests make on it
    no_phis = {k: v for k, v in good.items() if k != "image/phis"}
    read = read_like_hmmr_training(serialize_example(no_phis), precomputed_phi=True)
    assert not read["phis"].any()
    # [-1, 1] labels (the phi layout) read in the raw mode collapse to the crop's corner
    wrong = read_like_hmmr_training(serialize_example(no_phis | {
        "image/encoded": track_to_hmmr_example(frames, kps, boxes, precomputed_phi=False)[
            "image/encoded"
        ],
        "image/heightwidths": np.tile([300, 300], n),
    }), precomputed_phi=False)  # fmt: skip
    visible = wrong["labels"][:, :, 2] > 0
    assert np.ptp(wrong["labels"][visible][:, :2], axis=0).max() < 0.05  # all in one spot
    # the wrong crop size for the mode, or fewer frames than T
    with pytest.raises(HmmrWouldFail, match=r"the loader fixes \(20, 300, 300, 3\)"):
        read_like_hmmr_training(serialize_example(good), precomputed_phi=False)
    short = track_to_hmmr_example(frames[:19], kps[:19], boxes[:19], phis=_phis(19))
    with pytest.raises(HmmrWouldFail, match="N = 19 frames cannot give a window of T = 20"):
        read_like_hmmr_training(serialize_example(short), precomputed_phi=True)


def test_round_trip_of_several_examples(tmp_path):
    frames, kps, boxes = _track(4)
    examples = [
        track_to_hmmr_example(
            frames, kps, boxes, phis=_phis(4), filenames=[f"v/{i}.jpg" for i in range(4)]
        ),
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
    write_hmmr_tfrecord(path, [track_to_hmmr_example(frames, kps, boxes, phis=_phis(2))] * 2)
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
    write_hmmr_tfrecord(path, [track_to_hmmr_example(frames, kps, boxes, phis=_phis(2))])
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
    write_hmmr_tfrecord(good, [track_to_hmmr_example(frames, kps, boxes, phis=_phis(2))])
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
    example = track_to_hmmr_example(frames, kps, boxes, phis=_phis(2))
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
