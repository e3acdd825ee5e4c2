"""Optical flow: VPD's flow PNG encoding (values worked out by hand, docs/formats/vpd.md,
"Flow PNGs"), OpenCV backends recovering a known translation, RAFT end to end with untrained weights
and with a weights file through resolve_weights, and float16 storage."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vidmine.formats.track_flow import load_flow, save_flow
from vidmine.formats.vpd import decode_flow_png, encode_flow_png
from vidmine.optical_flow import compute_track_flow, make_flow_backend, raft_weights_source
from vidmine.stages.crops.geometry import extract_track_crops
from vidmine.stages.flow.report import flow_to_color
from vidmine.weights import WeightsError, sha256_from_file_name, sha256_of

STEP = 41 / 255  # one quantisation step for clip 20


def texture(h: int = 240, w: int = 240, seed: int = 0) -> np.ndarray:
    """Smooth random BGR texture: trackable at every pixel."""
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def shifted_pair(dx: int, dy: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next) where the content moves by (dx, dy) pixels: next(x, y) = prev(x-dx, y-dy)."""
    big = texture()
    y0, x0 = 50, 50
    prev = big[y0 : y0 + size, x0 : x0 + size]
    nxt = big[y0 - dy : y0 - dy + size, x0 - dx : x0 - dx + size]
    return np.ascontiguousarray(prev), np.ascontiguousarray(nxt)


# ------------------------------------------------------------------------------ encoding


def test_encoding_values_and_channel_layout_by_hand():
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = (3.0, -5.0)  # (23 * 255 / 41 = 143.05, 15 * 255 / 41 = 93.29) -> 143, 93
    flow[0, 1] = (20.0, -20.0)  # 40 * 255 / 41 = 248.78 -> 248; 0 -> 0
    flow[0, 2] = (25.0, -30.0)  # clipped first: 248, 0
    flow[1, 0] = (0.0, 0.0)  # 20 * 255 / 41 = 124.39 -> 124
    flow[1, 1] = (-0.1, 0.1)  # 19.9 * 6.2195 = 123.77 -> 123; 20.1 * 6.2195 = 125.01 -> 125
    flow[1, 2] = (np.nan, 1.0)  # NaN as 0 -> 124; 21 * 6.2195 = 130.6 -> 130
    image = encode_flow_png(flow)
    assert image.dtype == np.uint8 and image.shape == (2, 3, 3)
    # BGR as cv2 writes it: B = dx, G = dy, R = 128
    assert image[0, 0].tolist() == [143, 93, 128]
    assert image[0, 1].tolist() == [248, 0, 128]
    assert image[0, 2].tolist() == [248, 0, 128]
    assert image[1, 0].tolist() == [124, 124, 128]
    assert image[1, 1].tolist() == [123, 125, 128]
    assert image[1, 2].tolist() == [124, 130, 128]
    assert (image[..., 2] == 128).all()


def test_png_file_is_what_vpd_reads(tmp_path):
    flow = np.zeros((4, 4, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -5.0
    path = tmp_path / "0.flow.png"
    cv2.imwrite(str(path), encode_flow_png(flow))
    # PIL (RGB) sees (128, dy, dx); cv2 (BGR) gives back exactly the encoded array
    assert np.asarray(Image.open(path).convert("RGB"))[0, 0].tolist() == [128, 93, 143]
    back = decode_flow_png(cv2.imread(str(path)))
    assert np.allclose(back[0, 0], (143 * STEP - 20, 93 * STEP - 20), atol=1e-5)


def test_round_trip_within_one_quantisation_step():
    rng = np.random.default_rng(1)
    flow = rng.uniform(-20, 20, (64, 64, 2)).astype(np.float32)
    back = decode_flow_png(encode_flow_png(flow))
    error = flow - back
    assert back.dtype == np.float32 and back.shape == flow.shape
    assert error.min() >= -1e-4 and error.max() < STEP + 1e-4  # truncation: never above
    big = np.full((2, 2, 2), 100.0, np.float32)
    assert np.allclose(decode_flow_png(encode_flow_png(big)), 248 * STEP - 20)  # clipped


def test_median_subtraction_cancels_a_pan():
    flow = np.full((8, 8, 2), (7.0, -3.0), np.float32)
    flow[2, 2] = (9.0, -3.0)
    image = encode_flow_png(flow, subtract_median=True)
    assert image[0, 0, :2].tolist() == [124, 124]
    assert image[2, 2, 0] == int(22 * 255 / 41)


def test_flow_to_color():
    flow = np.zeros((2, 2, 2), np.float32)
    flow[0, 0] = (4.0, 0.0)  # rightwards, fastest: pure red at full brightness
    flow[0, 1] = (2.0, 0.0)
    color = flow_to_color(flow)
    assert color.dtype == np.uint8 and color.shape == (2, 2, 3)
    assert color[0, 0].tolist() == [255, 0, 0]
    assert color[1, 1].tolist() == [0, 0, 0]  # no motion: black
    assert 120 <= color[0, 1, 0] <= 135  # half speed, half brightness
    assert not flow_to_color(np.zeros((3, 3, 2), np.float32)).any()


# ------------------------------------------------------------------------------ backends


@pytest.mark.parametrize("name", ["dis_ultrafast", "dis_fast", "dis", "farneback"])
def test_opencv_backends_recover_a_translation(name):
    prev, nxt = shifted_pair(3, -2)
    backend = make_flow_backend(name)
    flow = backend.compute(np.stack([prev, nxt]), np.stack([nxt, prev]))
    assert flow.shape == (2, 128, 128, 2) and flow.dtype == np.float32
    inner = flow[:, 16:-16, 16:-16]
    assert np.allclose(inner[0].mean(axis=(0, 1)), (3, -2), atol=0.25)
    assert np.allclose(inner[1].mean(axis=(0, 1)), (-3, 2), atol=0.25)  # backwards pair
    single = backend.compute(prev, nxt)
    assert single.shape == (128, 128, 2)


def test_dis_presets_and_bad_names():
    assert make_flow_backend("dis", preset="FAST").name == "dis-fast"
    assert make_flow_backend("dis").name == "dis-medium"  # the filter stage's preset
    with pytest.raises(ValueError, match="preset"):
        make_flow_backend("dis", preset="slowest")
    with pytest.raises(ValueError, match="backend"):
        make_flow_backend("lucas-kanade")
    with pytest.raises(ValueError, match="shape"):
        make_flow_backend("dis").compute(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 9, 3)))


def test_track_flow_from_crops_of_a_moving_scene():
    # the scene moves (+2, +1) px per frame under a fixed box: the crops' flow is that motion
    big = texture(300, 300, seed=2)
    frames = {t: big[100 - t : 260 - t, 100 - 2 * t : 260 - 2 * t].copy() for t in range(4)}
    box = {"x1": 40.0, "y1": 30.0, "x2": 100.0, "y2": 130.0}
    track = pd.DataFrame([{"frame": t, "track_id": 1, **box} for t in range(4)])
    crops = extract_track_crops(frames, track, size=128)
    flow = compute_track_flow(make_flow_backend("dis"), crops)
    assert flow.shape == (4, 128, 128, 2)
    assert np.abs(flow[0]).max() < 0.05  # frame 0: prev is a copy
    scale = 128 / (crops.windows[1, 2] - crops.windows[1, 0])  # frame px -> crop px
    for i in (1, 2, 3):
        mean = flow[i, 16:-16, 16:-16].mean(axis=(0, 1))
        assert np.allclose(mean, (2 * scale, 1 * scale), atol=0.25), (i, mean)


def test_raft_untrained_end_to_end():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    backend = make_flow_backend("raft", model="small", weights=None, iters=4, device="cpu")
    assert backend.name == "raft-small" and backend.weights_path is None
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    flow = backend.compute(prev, np.roll(prev, 2, axis=2))
    assert flow.shape == (2, 64, 64, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    odd = backend.compute(prev[:1, :30, :50], prev[:1, :30, :50])  # padded, cropped back
    assert odd.shape == (1, 30, 50, 2)


def test_raft_weights_file_goes_through_resolve_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(123)
    reference = raft_small(weights=None)
    path = tmp_path / "raft_small_test.pth"
    torch.save(reference.state_dict(), path)
    prefix = sha256_of(path)[:8]
    backend = make_flow_backend("raft_small", weights=str(path), sha256=prefix, device="cpu")
    assert backend.weights_path == path
    loaded = backend.net.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded[key].cpu(), value), key
    wrong = "0" * 8 if not prefix.startswith("0") else "1" * 8
    with pytest.raises(WeightsError, match="SHA-256"):
        make_flow_backend("raft_small", weights=str(path), sha256=wrong, device="cpu")
    with pytest.raises(WeightsError, match="not found"):
        make_flow_backend("raft_small", weights=str(tmp_path / "missing.pth"), device="cpu")


def test_raft_official_names_and_their_checksums():
    pytest.importorskip("torchvision")
    url = raft_weights_source("large", "C_T_V1")
    assert url == "https://download.pytorch.org/models/raft_large_C_T_V1-22a6c225.pth"
    assert sha256_from_file_name(url) == "22a6c225"
    assert raft_weights_source("small", "DEFAULT").endswith("raft_small_C_T_V2-01064c6d.pth")
    assert raft_weights_source("small", "none") is None
    assert raft_weights_source("small", "/w/raft.pth") == "/w/raft.pth"
    assert sha256_from_file_name("/w/raft.pth") is None


# ------------------------------------------------------------------------------- storage


def test_save_flow_as_float16(tmp_path):
    flow = np.random.default_rng(3).uniform(-30, 30, (3, 16, 16, 2)).astype(np.float32)
    path = tmp_path / "flow" / "c1" / "1.npz"
    save_flow(path, flow, np.array([4, 5, 7]))
    assert [p.name for p in path.parent.iterdir()] == ["1.npz"]
    back, frames = load_flow(path)
    assert frames.tolist() == [4, 5, 7]
    assert back.dtype == np.float32 and np.abs(back - flow).max() <= 30 * 2**-10
    with np.load(path) as data:
        assert data["flow"].dtype == np.float16
    with pytest.raises(ValueError, match="frames"):
        save_flow(tmp_path / "bad.npz", flow, np.array([1]))
