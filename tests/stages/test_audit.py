"""The privacy audit (MediaPipe's two face detectors and MTCNN) on blurred demo clips and real
photographs: release, re-blur, drop, and which auditor found what."""

import itertools

import cv2
import pytest

from conftest import clip_item, dataset_settings
from vidmine.frames import VideoWriter, iter_frames, read_frames_at
from vidmine.stages.audit.backends import AuditEnsemble
from vidmine.stages.audit.stage import AuditStage
from vidmine.stages.blur.stage import BlurStage
from vidmine.stages.detect.backends.hog import box_iou


def audit_item(layout, demo_videos, blurred):
    return {**clip_item(demo_videos["carphone"]), "blurred": str(blurred)}


def test_audit_releases_a_clean_clip_as_a_link(layout, demo_videos):
    settings = dataset_settings()
    blurred = (
        layout.root
        / BlurStage(layout, "s00000", settings["blur"])
        .process(clip_item(demo_videos["carphone"]))
        .outputs[0]
    )
    audit = AuditStage(layout, "s00000", {"blur": settings["blur"], "audit": settings["audit"]})
    result = audit.process(audit_item(layout, demo_videos, blurred))
    assert result.status == "ok" and result.rows[0]["action"] == "clean"
    released = layout.root / result.outputs[0]
    assert released.parent == layout.released_clips("s00000")
    assert released.stat().st_ino == blurred.stat().st_ino


@pytest.mark.parametrize(("action", "status"), [("reblur", "ok"), ("drop", "dropped")])
def test_audit_catches_a_missed_face(layout, demo_videos, auditor, action, status):
    """A blur that missed the face (here: the unblurred clip itself) is re-blurred or dropped."""
    settings = dataset_settings(audit={"action": action})
    audit = AuditStage(layout, "s00000", {"blur": settings["blur"], "audit": settings["audit"]})
    result = audit.process(audit_item(layout, demo_videos, demo_videos["carphone"]))
    assert result.status == status
    row = result.rows[0]
    assert row["residual_frames"] >= 100
    released = layout.released_clips("s00000") / "carphone-c000.mp4"
    if action == "reblur":
        assert row["action"] == "reblurred" and row["residual_frames_after"] == 0
        assert not auditor.scan(released)
    else:
        assert row["action"] == "dropped" and not released.exists()


def test_undecodable_clip_fails_with_reason(layout, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    item = {"id": "x", "path": str(broken), "fps": 25.0, "n_frames": 10}
    result = BlurStage(layout, "s00000", dataset_settings()["blur"]).process(item)
    assert result.status == "failed" and "broken.mp4" in result.reason
    assert not list(layout.blurred_clips("s00000").glob("*"))


def test_each_auditor_finds_the_face_in_real_photographs_where_the_others_do(auditor):
    """Photographs that ship inside installed packages (matplotlib's Grace Hopper, scikit-image's
    astronaut and camera man): the three detectors are independent, so their agreeing on one box
    per photograph checks each of them."""
    import matplotlib.cbook
    import skimage.data

    photos = {
        "grace_hopper": cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", False)),
        "astronaut": cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR),
        "camera": cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR),
    }
    assert [a.name for a in auditor.auditors] == ["mediapipe_full", "mediapipe_short", "mtcnn"]
    for name, photo in photos.items():
        found = {a.name: a.faces(photo) for a in auditor.auditors}
        assert all(len(boxes) == 1 for boxes in found.values()), (name, found)
        boxes = [b[0] for b in found.values()]
        for first, second in itertools.combinations(boxes, 2):
            assert box_iou(first[None, :4], second[None, :4])[0, 0] > 0.3, (name, found)


def test_a_face_the_blur_left_on_one_frame_is_found_and_named(layout, demo_videos, tmp_path):
    """One unblurred frame in a run of blurred ones (a detector's flicker): the audit finds that
    frame, its row names the auditors that saw it, and the re-blur releases a clean clip."""
    settings = dataset_settings(blur={"carry_frames": 0})
    blurred = (
        layout.root
        / BlurStage(layout, "s00000", settings["blur"])
        .process(clip_item(demo_videos["carphone"]))
        .outputs[0]
    )
    leaky = tmp_path / "leaky.mp4"
    original = read_frames_at(demo_videos["carphone"], [60])[60]
    frames = list(iter_frames(blurred))
    frames[60] = original
    writer = VideoWriter(leaky, original.shape[1], original.shape[0], 30.0, 18, "veryfast", None)
    for frame in frames:
        writer.write(frame)
    writer.close()
    audit = AuditStage(layout, "s00000", {"blur": settings["blur"], "audit": settings["audit"]})
    result = audit.process(audit_item(layout, demo_videos, leaky))
    row = result.rows[0]
    assert row["residual_frames"] >= 1 and row["found_by"], row
    names = dict(pair.split(":") for pair in row["found_by"].split(","))
    assert set(names) <= {"mediapipe_full", "mediapipe_short", "mtcnn"} and len(names) >= 2
    assert result.status == "ok" and row["action"] == "reblurred"
    assert row["residual_frames_after"] == 0 and row["found_by_after"] == ""


def test_an_audit_without_auditors_is_refused():
    detectors = dataset_settings()["audit"]["detectors"]
    off = {name: {**s, "enabled": False} for name, s in detectors.items()}
    with pytest.raises(ValueError, match="no auditor"):
        AuditEnsemble(off)


def test_the_report_counts_clips_and_frames_per_auditor():
    import pandas as pd

    from vidmine.stages.audit.report import found_by_auditor

    audit = pd.DataFrame(
        {
            "found_by": ["mtcnn:3,mediapipe_full:1", "", "mtcnn:2"],
            "found_by_after": ["", "", "mtcnn:1"],
        }
    )
    table = found_by_auditor(audit).set_index(["auditor", "scan"])
    assert table.loc[("mtcnn", "first scan")].tolist() == [2, 5]
    assert table.loc[("mediapipe_full", "first scan")].tolist() == [1, 1]
    assert table.loc[("mtcnn", "last re-audit")].tolist() == [1, 1]
    assert len(table) == 3


@pytest.mark.parametrize("name", ["dlib_cnn", "dlib_hog"])
def test_a_dlib_auditor_gives_its_boxes_in_frame_pixels(auditor, name):
    """scikit-image's astronaut, doubled to 1024 px and looked at with ``max_side`` 512: the
    dlib auditor downscales, so its best box must be scaled back to the frame's pixels to
    overlap MTCNN's box on the same face (MTCNN looks at the frame at full size)."""
    import skimage.data

    from vidmine.stages.audit.backends import AUDITORS

    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    settings = {**dataset_settings()["audit"]["detectors"][name], "upsample": 0, "max_side": 512}
    boxes = AUDITORS[name](name, settings).faces(frame)
    assert boxes.ndim == 2 and boxes.shape[1] == 5 and len(boxes) >= 1, boxes
    assert boxes.dtype == "float32" and (boxes[:, 4] >= settings["min_score"]).all()
    mtcnn = next(a for a in auditor.auditors if a.name == "mtcnn").faces(frame)
    assert len(mtcnn) == 1
    best = boxes[boxes[:, 4].argmax()]
    assert box_iou(best[None, :4], mtcnn[:, :4])[0, 0] > 0.5, (boxes, mtcnn)
    assert ((boxes[:, :4] >= 0) & (boxes[:, :4] <= 1024)).all()
