"""The privacy audit (MediaPipe's face detector) on blurred demo clips: release, re-blur, drop."""

import pytest

from conftest import clip_item, dataset_settings
from vidmine.stages.audit.stage import AuditStage
from vidmine.stages.blur.stage import BlurStage


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
        assert auditor.scan(released) == {}
    else:
        assert row["action"] == "dropped" and not released.exists()


def test_undecodable_clip_fails_with_reason(layout, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    item = {"id": "x", "path": str(broken), "fps": 25.0, "n_frames": 10}
    result = BlurStage(layout, "s00000", dataset_settings()["blur"]).process(item)
    assert result.status == "failed" and "broken.mp4" in result.reason
    assert not list(layout.blurred_clips("s00000").glob("*"))
