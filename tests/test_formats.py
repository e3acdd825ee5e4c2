"""VideoPose3D formats (docs/formats/videopose3d.md, "Detectron npz", "Custom 2D npz",
"Human3.6M npz") and the shared safe pickle/npz helpers."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidmine.formats import FormatError
from vidmine.formats._pickles import load_npz, load_pickle, save_npz
from vidmine.formats.videopose3d import (
    H36M_KEPT_32,
    CustomEntry,
    h36m_reduce_to_17,
    read_custom_2d,
    read_detectron_clip,
    read_h36m_2d,
    read_h36m_3d,
    tracks_to_custom_entries,
    tracks_to_detectron,
    trusted_keypoints,
    write_custom_2d,
    write_detectron_clip,
)
from vidmine.tracks import TRACK_COLUMNS, read_tracks, write_tracks

# docs/formats/videopose3d.md, "Custom 2D npz", written out here rather than taken from the module
# under test.
CUSTOM_KEYS = {"positions_2d", "metadata"}  # what run.py reads
# vidmine adds the keypoint scores under a key VideoPose3D never opens
EXTRA_KEYS = {"scores_2d"}
CUSTOM_METADATA_KEYS = {"layout_name", "num_joints", "keypoints_symmetry", "video_metadata"}
COCO_SYMMETRY = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
DETECTRON_KEYS = {"boxes", "keypoints", "segments", "metadata"}
KEPT_32 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]


class _Boom:
    """Pickles into ``os.system('touch <marker>')``: must never run when read."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _entries(rng: np.random.Generator) -> list[CustomEntry]:
    return [
        CustomEntry("clipA-t001", 640, 360, rng.uniform(0, 300, (12, 17, 2)).astype(np.float32)),
        CustomEntry("clipA-t002", 640, 360, rng.uniform(0, 300, (5, 17, 2)).astype(np.float32)),
        CustomEntry("clipB-t001", 1280, 720, rng.uniform(0, 700, (1, 17, 2)).astype(np.float32)),
    ]


# --- shared helpers ---------------------------------------------------------------------------


def test_save_npz_writes_numpy1_compatible_pickles_that_np_load_reads(tmp_path):
    path = tmp_path / "x.npz"
    value = {"a": [np.arange(4, dtype=np.float32)], "b": None}
    save_npz(path, {"obj": value, "plain": np.arange(3)})
    raw = zipfile.ZipFile(path).read("obj.npy")
    # numpy < 1.26 has no numpy._core; numpy.core is importable by every numpy.
    assert b"numpy._core" not in raw and b"numpy.core.multiarray" in raw
    with np.load(path, allow_pickle=True) as npz:
        assert set(npz.files) == {"obj", "plain"}
        loaded = npz["obj"].item()
        np.testing.assert_array_equal(npz["plain"], np.arange(3))
    assert loaded["b"] is None and loaded["a"][0].dtype == np.float32
    np.testing.assert_array_equal(loaded["a"][0], np.arange(4))


def test_npz_with_malicious_object_array_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    payload = np.empty((), dtype=object)
    payload[()] = {"positions_3d": _Boom(marker)}
    np.savez(path, positions_3d=payload)
    with pytest.raises(FormatError, match=r"refused to unpickle (posix|nt)\.system") as err:
        load_npz(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_pickle_errors_are_one_line_and_name_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": np.arange(100)}, protocol=2)[:40])
    with pytest.raises(FormatError) as err:
        load_pickle(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


# --- data_2d_custom ---------------------------------------------------------------------------


def test_custom_2d_has_videopose3d_layout(tmp_path):
    entries = _entries(np.random.default_rng(0))
    path = write_custom_2d(tmp_path, "vidmine", entries)
    assert path == tmp_path / "data_2d_custom_vidmine.npz"
    # Load the way run.py does: allow_pickle, .item(), in-place normalisation of each camera.
    with np.load(path, allow_pickle=True) as npz:
        assert set(npz.files) == CUSTOM_KEYS | EXTRA_KEYS
        meta = npz["metadata"].item()
        positions = npz["positions_2d"].item()
    assert set(meta) == CUSTOM_METADATA_KEYS
    assert meta["layout_name"] == "coco" and meta["num_joints"] == 17
    assert meta["keypoints_symmetry"] == COCO_SYMMETRY
    # run.py reads w and h of each video; first_frame says where the sequence starts
    assert meta["video_metadata"] == {
        "clipA-t001": {"w": 640, "h": 360, "first_frame": 0},
        "clipA-t002": {"w": 640, "h": 360, "first_frame": 0},
        "clipB-t001": {"w": 1280, "h": 720, "first_frame": 0},
    }
    assert list(positions) == [e.name for e in entries]
    for entry in entries:
        assert set(positions[entry.name]) == {"custom"}
        cams = positions[entry.name]["custom"]
        assert isinstance(cams, list) and len(cams) == 1
        kp = cams[0]
        assert kp.dtype == np.float32 and kp.shape == entry.keypoints.shape
        np.testing.assert_array_equal(kp, entry.keypoints)
        res = meta["video_metadata"][entry.name]
        kp[..., :2] = kp[..., :2] / res["w"] * 2 - [1, res["h"] / res["w"]]  # writeable


def test_custom_2d_round_trip(tmp_path):
    entries = _entries(np.random.default_rng(1))
    path = write_custom_2d(tmp_path / "data_2d_custom_x.npz", "x", entries)
    back = read_custom_2d(path)
    assert [(e.name, e.width, e.height) for e in back] == [
        (e.name, e.width, e.height) for e in entries
    ]
    for a, b in zip(back, entries, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_custom_2d_agrees_with_the_lifter_reader_and_writer(tmp_path):
    # the lifter reads custom 2D files with read_custom_2d(allow_missing=True) and has no
    # writer of its own: both views are this module's
    def lifter_read(path):
        entries = read_custom_2d(path, allow_missing=True)
        return {e.name: (e.keypoints, e.width, e.height) for e in entries}

    entries = _entries(np.random.default_rng(2))
    lifter_view = lifter_read(write_custom_2d(tmp_path, "a", entries))
    assert list(lifter_view) == [e.name for e in entries]
    for e in entries:
        kp, w, h = lifter_view[e.name]
        assert (w, h) == (e.width, e.height)
        np.testing.assert_array_equal(kp, e.keypoints)
    other = tmp_path / "data_2d_custom_b.npz"
    write_custom_2d(other, "b", entries)
    assert [e.name for e in read_custom_2d(other)] == [e.name for e in entries]


@pytest.mark.parametrize(
    ("name", "entry", "message"),
    [
        ("data_2d_custom_other.npz", None, "only reads data_2d_custom_x.npz"),
        (None, CustomEntry("a", 10, 10, np.zeros((3, 17, 3))), r"expected \(T>0, 17, 2\)"),
        (None, CustomEntry("a", 10, 10, np.full((3, 17, 2), np.nan)), "NaN"),
        (None, CustomEntry("a", 0, 10, np.zeros((3, 17, 2))), "size 0x10"),
    ],
)
def test_custom_2d_writer_rejects_bad_input(tmp_path, name, entry, message):
    target = tmp_path / name if name else tmp_path
    entries = [entry] if entry else _entries(np.random.default_rng(3))
    with pytest.raises(FormatError, match=message):
        write_custom_2d(target, "x", entries)
    assert not list(tmp_path.glob("*.npz"))


def test_custom_2d_writer_rejects_duplicate_names(tmp_path):
    e = _entries(np.random.default_rng(4))[0]
    with pytest.raises(FormatError, match="appears twice"):
        write_custom_2d(tmp_path, "x", [e, e])


def test_custom_2d_reader_errors_name_the_file(tmp_path):
    truncated = tmp_path / "data_2d_custom_t.npz"
    good = write_custom_2d(tmp_path, "good", _entries(np.random.default_rng(5)))
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(FormatError, match=f"^{truncated}: not a readable npz file"):
        read_custom_2d(truncated)
    wrong = tmp_path / "data_2d_custom_w.npz"
    np.savez(wrong, positions_3d=np.zeros(3))
    with pytest.raises(FormatError, match=f"^{wrong}: missing key 'positions_2d'"):
        read_custom_2d(wrong)
    h36m_layout = tmp_path / "data_2d_custom_h.npz"
    np.savez(
        h36m_layout,
        positions_2d={"a": {"custom": [np.zeros((2, 17, 2), np.float32)]}},
        metadata={"layout_name": "h36m", "num_joints": 17, "video_metadata": {}},
    )
    with pytest.raises(FormatError, match="layout 'h36m'"):
        read_custom_2d(h36m_layout)


# --- track table -> custom entries -------------------------------------------------------------


def _row(frame, track_id, kp=None, class_id=1, interpolated=False, score=0.9):
    return {
        "clip_id": "c1",
        "frame": frame,
        "time": frame / 25,
        "track_id": track_id,
        "class_id": class_id,
        "class_name": "person" if class_id == 1 else "car",
        "x1": 10.0 + frame,
        "y1": 20.0,
        "x2": 50.0 + frame,
        "y2": 120.0,
        "score": 0.0 if interpolated else score,
        "keypoints": None if kp is None else np.asarray(kp, np.float32).reshape(-1).tolist(),
        "interpolated": interpolated,
        "mask_png": None,
    }


def _kp(value: float) -> np.ndarray:
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = value + np.arange(17)
    kp[:, 1] = 2 * value
    kp[:, 2] = 0.8
    return kp


@pytest.fixture()
def track_table(tmp_path) -> pd.DataFrame:
    rows = [
        _row(0, 1, _kp(0)),
        _row(1, 1, _kp(10), interpolated=True),
        _row(2, 1, None),  # person row without keypoints -> interpolated
        _row(4, 1, _kp(40)),  # frame 3 has no row at all -> interpolated
        _row(3, 2, _kp(100)),
        _row(4, 2, _kp(110)),
        _row(0, 3, None, class_id=3),  # a car
        _row(1, 4, None),  # a person never seen with keypoints
    ]
    write_tracks(rows, tmp_path / "c1.parquet")
    return read_tracks(tmp_path / "c1.parquet")  # the parquet form the exports really read


def test_tracks_to_custom_entries(track_table):
    clip = {"clip_id": "c1", "width": 640, "height": 480}
    entries = tracks_to_custom_entries(track_table, clip)
    assert [e.name for e in entries] == ["c1-t001", "c1-t002"]
    first, second = entries
    assert (first.width, first.height, first.first_frame) == (640, 480, 0)
    assert first.keypoints.shape == (5, 17, 2) and first.keypoints.dtype == np.float32
    # Frames 2 and 3 lie between keypoints of value 10 (frame 1) and 40 (frame 4).
    np.testing.assert_allclose(first.keypoints[:, 0, 0], [0, 10, 20, 30, 40])
    np.testing.assert_allclose(first.keypoints[:, 5, 1], [0, 20, 40, 60, 80])
    assert second.first_frame == 3 and second.keypoints.shape == (2, 17, 2)
    np.testing.assert_allclose(second.keypoints[:, 16, 0], [116, 126])


def test_untrusted_keypoints_are_filled_in_and_kept_inside_the_frame():
    """What VideoPose3D's Detectron input always is: every joint in the image; unsure joints
    filled from the joint's trusted frames; a joint never trusted (legs below the frame of a
    driver filmed from the chest up) moved into the frame; scores kept beside."""
    kp = np.zeros((4, 17, 3), np.float32)
    kp[:, :, 0] = np.arange(4)[:, None] * 10 + 5  # x 5, 15, 25, 35
    kp[:, :, 1] = 50
    kp[:, :, 2] = 0.9
    kp[1, 0, 2] = 0.05  # nose unsure in frame 1: from frames 0 and 2
    kp[2, 1, 0] = -300  # left eye off the image in frame 2: from frames 1 and 3
    kp[:, 15:, 1] = 454  # ankles below a 144-pixel frame in every frame, low score
    kp[:, 15:, 2] = 0.05
    kp[3, 2] = np.nan  # right eye missing in the last frame: held from frame 2
    xy, scores = trusted_keypoints(kp, 176, 144, min_score=0.3)
    np.testing.assert_allclose(xy[1, 0], [15, 50])
    np.testing.assert_allclose(xy[2, 1], [25, 50])
    np.testing.assert_allclose(xy[3, 2], [25, 50])
    np.testing.assert_allclose(xy[:, 15:, 1], 143)  # the bottom row of the image
    assert scores[1, 0] == 0 and scores[2, 1] == 0 and scores[3, 2] == 0  # filled in
    np.testing.assert_allclose(scores[:, 15:], 0.05)  # the detector's own, guessed positions
    np.testing.assert_allclose(scores[0, :15], 0.9)
    assert xy.dtype == np.float32 and np.isfinite(xy).all()
    assert (xy[..., 0] >= 0).all() and (xy[..., 0] <= 175).all() and (xy[..., 1] <= 143).all()
    entries = tracks_to_custom_entries(
        pd.DataFrame([_row(f, 1, kp[f]) for f in range(3)]),
        {"clip_id": "c1", "width": 176, "height": 144},
    )
    np.testing.assert_allclose(entries[0].keypoints[:, 15:, 1], 143)


def test_scores_and_alignment_are_written_beside_what_videopose3d_reads(tmp_path):
    kp = np.full((3, 17, 2), 5, np.float32)
    scores = np.full((3, 17), 0.7, np.float32)
    entry = CustomEntry("c-t001", 64, 48, kp, first_frame=12, scores=scores, video="c-t001.mp4")
    path = write_custom_2d(tmp_path, "x", [entry])
    with np.load(path, allow_pickle=True) as npz:  # as run.py loads it
        assert npz["metadata"].item()["video_metadata"]["c-t001"] == {
            "w": 64, "h": 48, "first_frame": 12, "video": "c-t001.mp4"
        }  # fmt: skip
        np.testing.assert_array_equal(npz["scores_2d"].item()["c-t001"]["custom"][0], scores)
    (back,) = read_custom_2d(path)
    assert (back.first_frame, back.video) == (12, "c-t001.mp4")
    np.testing.assert_array_equal(back.scores, scores)
    with pytest.raises(FormatError, match=r"c-t001: scores shape \(2, 17\)"):
        write_custom_2d(tmp_path, "x", [CustomEntry("c-t001", 64, 48, kp, scores=scores[:2])])


def test_tracks_to_custom_entries_of_an_empty_table():
    empty = pd.DataFrame(columns=TRACK_COLUMNS)
    assert tracks_to_custom_entries(empty, {"clip_id": "c", "width": 1, "height": 1}) == []


# --- Detectron npz -----------------------------------------------------------------------------


def test_detectron_clip_layout(tmp_path):
    kp_a, kp_b = _kp(1), _kp(2)
    kp_b[:, 2] = 0.3
    boxes = [
        np.array([[1, 2, 30, 40, 0.6], [5, 6, 50, 60, 0.95]], np.float32),
        None,
        np.array([[7, 8, 9, 10, 0.5]], np.float32),
    ]
    keypoints = [np.stack([kp_a, kp_b]), None, kp_a[None]]
    path = tmp_path / "clip.mp4.npz"
    write_detectron_clip(path, boxes, keypoints, 320, 240)
    with np.load(path, allow_pickle=True, encoding="latin1") as npz:
        assert set(npz.files) == DETECTRON_KEYS
        bb, kp, seg = npz["boxes"], npz["keypoints"], npz["segments"]
        meta = npz["metadata"].item()
    assert bb.shape == (3, 2) and kp.shape == (3, 2) and seg.shape == (3,)
    assert bb.dtype == object and kp.dtype == object
    assert all(s is None for s in seg) and meta == {"w": 320, "h": 240}
    assert bb[0][0] == [] and len(bb[1][1]) == 0 and len(kp[1][1]) == 0
    assert bb[0][1].dtype == np.float32 and bb[0][1].shape == (2, 5)
    assert kp[0][1].shape == (2, 4, 17)
    np.testing.assert_array_equal(kp[0][1][1, 0], kp_b[:, 0])  # row x
    np.testing.assert_array_equal(kp[0][1][1, 1], kp_b[:, 1])  # row y
    np.testing.assert_array_equal(kp[0][1][1, 2], 0)  # dummy logit row
    np.testing.assert_allclose(kp[0][1][1, 3], 0.3)  # prob row
    # What prepare_data_2d_custom does per frame (docs/formats/videopose3d.md, "Custom 2D npz"):
    # best box -> keypoints.T.
    best = np.argmax(bb[0][1][:, 4])
    np.testing.assert_array_equal(kp[0][1][best].T[:, :2], kp_b[:, :2])


def test_detectron_round_trip_and_bad_input(tmp_path, track_table):
    boxes, kps = tracks_to_detectron(track_table, 5, 640, 480)
    # frame 1 of track 1 is interpolated (not a detection); frame 4 has tracks 1 and 2
    assert [len(b) for b in boxes] == [1, 0, 0, 1, 2]
    path = tmp_path / "c1.mp4.npz"
    write_detectron_clip(path, boxes, kps, 640, 480)
    b2, k2, meta = read_detectron_clip(path)
    assert meta == {"w": 640, "h": 480}
    for a, b in zip(b2 + k2, boxes + kps, strict=True):
        np.testing.assert_allclose(a, b)
    with pytest.raises(FormatError, match=r"only reads \*\.npz"):
        write_detectron_clip(tmp_path / "c1.mp4", boxes, kps, 640, 480)
    with pytest.raises(FormatError, match=r"frame 0: keypoints shape"):
        write_detectron_clip(path, boxes, [k[:, :5] for k in kps], 640, 480)
    with pytest.raises(FormatError, match=f"^{tmp_path / 'x.npz'}: missing key 'boxes'"):
        np.savez(tmp_path / "x.npz", metadata={"w": 1, "h": 1})
        read_detectron_clip(tmp_path / "x.npz")


# --- Human3.6M ----------------------------------------------------------------------------------


def test_h36m_3d_reader(tmp_path):
    rng = np.random.default_rng(6)
    walk = rng.normal(size=(10, 32, 3)).astype(np.float32)
    path = tmp_path / "data_3d_h36m.npz"
    np.savez_compressed(path, positions_3d={"S1": {"Walking": walk, "Photo 1": walk[:4]}})
    data = read_h36m_3d(path)
    assert list(data) == ["S1"] and list(data["S1"]) == ["Walking", "Photo 1"]
    np.testing.assert_array_equal(data["S1"]["Walking"], walk)
    reduced = h36m_reduce_to_17(data["S1"]["Walking"])
    assert reduced.shape == (10, 17, 3)
    np.testing.assert_array_equal(reduced, walk[:, KEPT_32])
    np.savez(path, positions_3d={"S1": {"Walking": walk[:, :31]}})
    with pytest.raises(FormatError, match=rf"^{path}: S1/Walking: shape \(10, 31, 3\)"):
        read_h36m_3d(path)


def test_h36m_kept_joints_agree_with_the_lifter():
    pytest.importorskip("torch", reason="vidmine.lifter.data needs torch")
    from vidmine.lifter.data import H36M_KEPT_32 as lifter_kept

    assert tuple(H36M_KEPT_32) == tuple(lifter_kept) == tuple(KEPT_32)


def test_h36m_2d_reader(tmp_path):
    cams = [np.full((8, 17, 2), i, np.float32) for i in range(4)]
    meta = {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    path = tmp_path / "data_2d_h36m_gt.npz"
    np.savez_compressed(
        path,
        positions_2d={"S9": {"Sitting": cams, "Eating": [cams[0], None, cams[2], cams[3]]}},
        metadata=meta,
    )
    positions, metadata = read_h36m_2d(path)
    assert metadata == meta and "layout_name" not in metadata
    assert [float(c[0, 0, 0]) for c in positions["S9"]["Sitting"]] == [0, 1, 2, 3]
    assert positions["S9"]["Eating"][1] is None
    np.savez(path, positions_2d={"S9": {"Sitting": cams[:3]}}, metadata=meta)
    with pytest.raises(FormatError, match=f"^{path}: S9/Sitting: expected a list of 4 cameras"):
        read_h36m_2d(path)
    np.savez(path, positions_2d={"S9": {"Sitting": [c[:, :16] for c in cams]}}, metadata=meta)
    with pytest.raises(FormatError, match=r"camera 0: shape \(8, 16, 2\), expected \(T, 17, 2\)"):
        read_h36m_2d(path)


def test_load_npz_reads_protocol2_object_arrays(tmp_path):
    """Protocol-2 pickles carry array data through _codecs.encode(str, 'latin1')."""
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    buf = io.BytesIO()
    pickle.dump(np.array([arr, None], dtype=object), buf, protocol=2)
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as zf, zf.open("x.npy", "w") as fp:
        np.lib.format.write_array_header_1_0(
            fp, {"descr": "|O", "fortran_order": False, "shape": (2,)}
        )
        fp.write(buf.getvalue())
    loaded = load_npz(path)["x"]
    np.testing.assert_array_equal(loaded[0], arr)
    assert loaded[1] is None
