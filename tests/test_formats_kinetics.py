"""Temporal-3D-Pose-Kinetics pickles (docs/formats/kinetics.md): safe reading and conversion."""

from __future__ import annotations

import os
import pickle
import pickletools
import struct

import numpy as np
import pytest

from vidmine.formats import FormatError
from vidmine.formats.kinetics import (
    cocoplus_to_coco,
    kinetics_to_lifter_arrays,
    kinetics_to_track_rows,
    parse_kinetics_name,
    read_kinetics_pkl,
)
from vidmine.tracks import read_tracks, write_tracks

# docs/formats/kinetics.md, "The 19 cocoplus joints": cocoplus index of each COCO joint, in COCO
# order.
COCOPLUS_OF_COCO = [14, 15, 16, 17, 18, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
N = 6
W, H = 200, 100


def _py2_pickle(obj) -> bytes:
    """Protocol-2 bytes as Python 2's cPickle writes them: str as (SHORT_)BINSTRING.

    numpy arrays reduce to ``numpy.core.multiarray._reconstruct`` with a state tuple whose
    raw data is a Python 2 ``str``; that is what ``encoding='latin1'`` exists for.
    """
    out = [b"\x80\x02"]

    def i4(value: int) -> bytes:
        return b"J" + struct.pack("<i", value)

    def string(raw: bytes) -> None:
        if len(raw) < 256:
            out.append(b"U" + bytes([len(raw)]) + raw)  # SHORT_BINSTRING
        else:
            out.append(b"T" + struct.pack("<i", len(raw)) + raw)  # BINSTRING

    def emit(o) -> None:
        if isinstance(o, dict):
            out.append(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.append(b"u")
        elif isinstance(o, str):
            string(o.encode("latin1"))
        elif isinstance(o, np.ndarray):
            a = np.ascontiguousarray(o)
            out.append(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            out.append(i4(0) + b"\x85")
            string(b"b")
            out.append(b"\x87R(" + i4(1) + b"(" + b"".join(i4(d) for d in a.shape) + b"t")
            out.append(b"cnumpy\ndtype\n")
            string(f"{a.dtype.kind}{a.dtype.itemsize}".encode())
            out.append(i4(0) + i4(1) + b"\x87R(" + i4(3))
            string(b"<")
            out.append(b"NNN" + i4(-1) + i4(-1) + i4(0) + b"tb\x89")
            string(a.tobytes())
            out.append(b"tb")
        else:
            raise TypeError(type(o))

    emit(obj)
    out.append(b".")
    return b"".join(out)


def _data(convention: str = "readme", joints: int = 19, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x3 = rng.uniform(-0.5, 0.5, (N, joints, 3))
    x3[:, :, 2] = 0.0  # flat bodies: weak and full perspective then agree exactly
    cams = np.stack([rng.uniform(0.6, 0.9, N), rng.uniform(0.9, 1.1, N), rng.uniform(0.6, 0.8, N)])
    cams = cams.T
    s, t = cams[:, None, :1], cams[:, None, 1:]
    kp2 = s * (x3[:, :19, :2] + t) if convention == "readme" else s * x3[:, :19, :2] + t
    return {
        "time": np.array([0.0, 0.04, 0.041, 0.081, 0.2, 0.5]),
        "smpl_shape": rng.normal(size=(N, 10)),
        "smpl_pose": rng.normal(size=(N, 72)),
        "3d_keypoints": x3,
        "2d_keypoints": kp2,
        "camera": cams,  # the visualiser's key
    }


def test_parse_name_from_the_right():
    assert parse_kinetics_name("KV4jIAq3WJo_155_165.pkl") == ("KV4jIAq3WJo", 155, 165)
    assert parse_kinetics_name("/x/a_b_-c_0_10.pkl") == ("a_b_-c", 0, 10)
    with pytest.raises(FormatError, match="not named"):
        parse_kinetics_name("clip.pkl")


def test_reads_a_python2_pickle(tmp_path):
    data = _data()
    path = tmp_path / "a_b_155_165.pkl"
    path.write_bytes(_py2_pickle(data))
    ops = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    assert {"SHORT_BINSTRING", "BINSTRING"} <= ops and "BINUNICODE" not in ops  # Python 2 str
    clip = read_kinetics_pkl(path)
    assert (clip.youtube_id, clip.start, clip.end, len(clip)) == ("a_b", 155, 165, N)
    np.testing.assert_allclose(clip.cameras, data["camera"], rtol=1e-6)
    np.testing.assert_allclose(clip.keypoints_2d, data["2d_keypoints"], rtol=1e-6)
    assert clip.keypoints_3d.shape == (N, 19, 3) and clip.smpl_pose.shape == (N, 72)
    assert clip.vertices is None


def test_reads_a_python3_protocol2_pickle_with_cameras_and_vertices(tmp_path):
    data = _data()
    data["cameras"] = data.pop("camera")
    data["vertices"] = np.zeros((N, 6890, 3), np.float32)
    path = tmp_path / "vid_0_10.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    clip = read_kinetics_pkl(path)
    assert clip.vertices.shape == (N, 6890, 3)
    np.testing.assert_allclose(clip.smpl_shape, data["smpl_shape"], rtol=1e-6)


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_0_10.pkl"
    data = _data()
    data["time"] = _Boom(marker)
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(FormatError) as err:
        read_kinetics_pkl(path)
    module = os.system.__module__  # posix (or nt)
    assert str(err.value) == (
        f"{path}: refused to unpickle {module}.system "
        "(only numpy arrays and plain containers are allowed)"
    )
    assert not marker.exists()
    # A hand-written Python 2 style one naming builtins.eval.
    path.write_bytes(b"\x80\x02c__builtin__\neval\nU\x04'hi'\x85R.")
    with pytest.raises(FormatError, match=r"refused to unpickle __builtin__\.eval"):
        read_kinetics_pkl(path)


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    path = tmp_path / "v_0_10.pkl"
    path.write_bytes(_py2_pickle(_data())[:500])
    with pytest.raises(FormatError, match=f"^{path}: not a readable pickle") as err:
        read_kinetics_pkl(path)
    assert "\n" not in str(err.value)
    data = _data()
    del data["2d_keypoints"]
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(FormatError, match=rf"^{path}: missing keys \['2d_keypoints'\]"):
        read_kinetics_pkl(path)
    data = _data()
    data["smpl_pose"] = data["smpl_pose"][:, :69]
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(FormatError, match=rf"^{path}: smpl_pose has shape \(6, 69\)"):
        read_kinetics_pkl(path)
    path.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(FormatError, match=f"^{path}: top level is list"):
        read_kinetics_pkl(path)


def test_track_rows_scale_both_axes_by_height(tmp_path):
    data = _data()
    path = tmp_path / "v_0_10.pkl"
    path.write_bytes(_py2_pickle(data))
    rows = kinetics_to_track_rows(read_kinetics_pkl(path), "clipK", W, H, fps=25, n_frames=10)
    # times 0, .04, .041, .081, .2, .5 at 25 fps -> frames 0, 1, (1 again), 2, 5, (12 >= 10)
    assert rows["frame"].tolist() == [0, 1, 2, 5]
    np.testing.assert_allclose(rows["time"], [0, 0.04, 0.08, 0.2])
    kp = np.stack(rows["keypoints"].to_numpy()).reshape(-1, 17, 3)
    expected = data["2d_keypoints"][[0, 1, 3, 4]] * H  # x too is scaled by the height
    np.testing.assert_allclose(kp[:, :, :2], expected[:, COCOPLUS_OF_COCO], rtol=1e-5)
    assert kp[:, :, :2].max() > 1.0 * H  # x beyond H: not scaled by the (larger) width
    np.testing.assert_array_equal(kp[:, :, 2], 1.0)
    np.testing.assert_allclose(rows["x1"], expected[:, :, 0].min(axis=1), rtol=1e-5)
    write_tracks(rows, tmp_path / "t.parquet")  # fits the track-table schema
    assert read_tracks(tmp_path / "t.parquet")["track_id"].tolist() == [1, 1, 1, 1]


def test_cocoplus_to_coco_by_name():
    pts = np.arange(19, dtype=np.float32)[:, None].repeat(2, axis=1)
    assert cocoplus_to_coco(pts)[:, 0].tolist() == COCOPLUS_OF_COCO


@pytest.mark.parametrize("convention", ["readme", "renderer"])
def test_lifter_arrays_reproject_onto_the_2d_keypoints(tmp_path, convention):
    data = _data(convention)
    path = tmp_path / "v_0_10.pkl"
    path.write_bytes(_py2_pickle(data))
    out = kinetics_to_lifter_arrays(read_kinetics_pkl(path), W, H, focal_px=300.0)
    assert out["convention"] == convention
    pos3d, pos2d = out["pos3d"], out["pos2d"]
    assert pos3d.shape == (N, 17, 3) and pos2d.shape == (N, 17, 2)
    assert np.all(pos3d[:, :, 2] > 0)  # in front of the camera
    uv = 300.0 * pos3d[:, :, :2] / pos3d[:, :, 2:] + [W / 2, H / 2]
    px = data["2d_keypoints"] * H
    # H36M-17 r_hip (1), l_wrist (13), head (10) <- cocoplus right_hip, left_wrist, head_top
    for h36m, cocoplus in ((1, 2), (13, 11), (10, 13)):
        np.testing.assert_allclose(uv[:, h36m], px[:, cocoplus], atol=1e-3)
    np.testing.assert_allclose(pos3d[:, 0], (pos3d[:, 1] + pos3d[:, 4]) / 2, atol=1e-6)
    np.testing.assert_allclose(pos2d, px[:, COCOPLUS_OF_COCO], rtol=1e-5)


def test_lifter_intrinsics_agree_with_the_lifter(tmp_path):
    pytest.importorskip("torch", reason="vidmine.lifter.camera needs torch")
    from vidmine.lifter.camera import normalized_intrinsics

    path = tmp_path / "v_0_10.pkl"
    path.write_bytes(_py2_pickle(_data()))
    out = kinetics_to_lifter_arrays(read_kinetics_pkl(path), W, H, focal_px=250.0)
    expected = normalized_intrinsics([250.0, 250.0], [W / 2, H / 2], W, H)
    np.testing.assert_allclose(out["intrinsics"], expected, atol=1e-6)


def test_24_joint_3d_keypoints_need_a_consistent_first_19(tmp_path):
    data = _data(joints=24)
    path = tmp_path / "v_0_10.pkl"
    path.write_bytes(_py2_pickle(data))
    assert kinetics_to_lifter_arrays(read_kinetics_pkl(path), W, H)["pos3d"].shape == (N, 17, 3)
    data["3d_keypoints"] = np.random.default_rng(9).uniform(-1, 1, (N, 24, 3))
    path.write_bytes(_py2_pickle(data))
    with pytest.raises(FormatError, match="first 19 do not reproject"):
        kinetics_to_lifter_arrays(read_kinetics_pkl(path), W, H)
