"""Detectron2 keypoint R-CNN (VideoPose3D's inference config) and a Detectron2 box detector.

detectron2 is not on PyPI: install it as ``workflow/envs/detectron2.yaml`` says (built against
the env's torch). It is imported only when this backend is built; the conversion of its outputs
to vidmine's detections is plain numpy (``instances_to_detections``), tested without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidmine.errors import BackendUnavailable
from vidmine.stages.detect.detections import Detections, no_keypoints
from vidmine.tracks import PERSON_CLASS_ID
from vidmine.weights import WeightsError, resolve_weights

# VideoPose3D's inference/infer_video_d2.py: this config, its model-zoo weights, threshold 0.7.
KEYPOINT_CONFIG = "COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml"
OBJECT_CONFIG = "COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml"
INSTALL_HINT = (
    "install detectron2 from source as workflow/envs/detectron2.yaml says "
    "(pip install 'git+https://github.com/facebookresearch/detectron2.git')"
)
# Detectron2's COCO models predict contiguous ids 0..79; index -> COCO category id.
CONTIGUOUS_TO_COCO = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90,
]  # fmt: skip


def instances_to_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    keypoints: np.ndarray | None,
    threshold: float,
    people_only: bool,
) -> Detections:
    """Detectron2 ``Instances`` fields (as numpy) -> detections with COCO category ids.

    Keypoint R-CNN's ``pred_keypoints`` are (N, 17, 3) x, y, logit-like score in COCO order,
    the layout VideoPose3D stores; box detectors give no keypoints (NaN rows).
    """
    coco_ids = np.array([CONTIGUOUS_TO_COCO[int(c)] for c in classes], np.int32)
    keep = scores >= threshold
    keep &= (coco_ids == PERSON_CLASS_ID) if people_only else (coco_ids != PERSON_CLASS_ID)
    if keypoints is not None:
        points = keypoints[keep].astype(np.float32)
    else:
        points = no_keypoints(int(keep.sum()))
    return Detections(
        boxes[keep].astype(np.float32), scores[keep].astype(np.float32), coco_ids[keep], points
    )


class Detectron2Detector:
    """Batched Detectron2 predictors (one forward pass per batch of frames)."""

    name = "detectron2"

    def __init__(self, settings: dict[str, Any]):
        try:
            import torch
            from detectron2 import model_zoo
            from detectron2.config import get_cfg
            from detectron2.modeling import build_model
        except ImportError as exc:
            raise BackendUnavailable(
                f"detect backend 'detectron2': {exc.name or 'detectron2'} is not installed; "
                + INSTALL_HINT
            ) from exc
        options = settings.get("detectron2", {})
        self.torch = torch
        self.batch_size = int(settings.get("batch_size", 8))
        self.threshold = float(options.get("score_threshold", 0.7))
        device = options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.models = []
        for config, weights, people in (
            (
                options.get("keypoint_config", KEYPOINT_CONFIG),
                options.get("keypoint_weights"),
                True,
            ),
            (options.get("object_config"), options.get("object_weights"), False),
        ):
            if not config:
                continue
            cfg = get_cfg()
            cfg.merge_from_file(model_zoo.get_config_file(config))
            cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = self.threshold
            cfg.MODEL.DEVICE = device
            model = build_model(cfg).eval()
            self._load(model, weights or model_zoo.get_checkpoint_url(config))
            self.models.append((model, people, cfg.INPUT.FORMAT))
        self.config = options.get("keypoint_config", KEYPOINT_CONFIG)

    def _load(self, model, weights: str) -> None:
        from detectron2.checkpoint import DetectionCheckpointer

        try:
            path = resolve_weights(weights)
        except WeightsError as exc:
            raise BackendUnavailable(f"detect backend 'detectron2': {exc}") from exc
        DetectionCheckpointer(model).load(str(path))

    def describe(self) -> dict[str, Any]:
        import detectron2

        return {"backend": self.name, "model": self.config, "detectron2": detectron2.__version__}

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        torch = self.torch
        results: list[list[Detections]] = [[] for _ in frames]
        with torch.inference_mode():
            for model, people, fmt in self.models:
                inputs = [
                    {
                        "image": torch.as_tensor(
                            np.ascontiguousarray(f if fmt == "RGB" else f[:, :, ::-1])
                        ).permute(2, 0, 1),
                        "height": f.shape[0],
                        "width": f.shape[1],
                    }
                    for f in frames
                ]
                for i, output in enumerate(model(inputs)):
                    inst = output["instances"].to("cpu")
                    results[i].append(
                        instances_to_detections(
                            inst.pred_boxes.tensor.numpy(),
                            inst.scores.numpy(),
                            inst.pred_classes.numpy(),
                            inst.pred_keypoints.numpy() if inst.has("pred_keypoints") else None,
                            self.threshold,
                            people,
                        )
                    )
        return [Detections.concat(parts) for parts in results]
