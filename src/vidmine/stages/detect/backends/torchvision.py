"""torchvision keypoint R-CNN for people and a COCO box detector for objects, batched.

Weights come from torchvision's official URLs (or a path) through ``vidmine.weights``: one
cache, a checksum (the 8 hex digits in torchvision's file names are a SHA-256 prefix), and a
one-line error that says how to get the file. ``weights: none`` builds the same networks with
random weights: the code path runs end to end (the tests do that; no weights can be downloaded on
the development machines), but the detections mean nothing.

The box detector's boxes also carry their class distribution (``record_class_scores``): the
softmax over the 91 COCO ids of the proposal each box came from, which torchvision computes and
drops (TrackVerse keeps DETIC's as a track's top-10 classes). Keypoint R-CNN's persons have none
(its two classes are person and background).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidmine.errors import BackendUnavailable
from vidmine.stages.detect.detections import Detections, no_keypoints
from vidmine.tracks import PERSON_CLASS_ID
from vidmine.weights import WeightsError, resolve_weights, sha256_from_file_name

PERSON_MODELS = {
    "keypointrcnn_resnet50_fpn": (
        "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth"
    ),
}
OBJECT_MODELS = {
    "fasterrcnn_resnet50_fpn_v2": (
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    ),
}
NO_WEIGHTS = (None, "", "none")


def _load_state(weights: str | None, default_url: str, sha256: str | None) -> dict | None:
    import torch

    if weights in NO_WEIGHTS:
        return None
    source = default_url if weights == "official" else weights
    digest = sha256 or (sha256_from_file_name(source) if source == default_url else None)
    try:
        path = resolve_weights(source, digest)
    except WeightsError as exc:
        raise BackendUnavailable(f"detect backend 'torchvision': {exc}") from exc
    return torch.load(path, map_location="cpu", weights_only=True)


def record_class_scores(model) -> None:
    """Make ``model.roi_heads`` keep, per image of its last forward pass, the class
    distribution of each returned box (``roi_heads.class_scores``: (N, num_classes) tensors).

    torchvision's ``RoIHeads.postprocess_detections`` computes the softmax of every proposal,
    splits each proposal into one candidate per class and returns the survivors' boxes, scores
    and labels only. Rather than re-implementing it, its result is kept as is and each returned
    box is matched to the proposal it came from: the same decode, clip and softmax give that
    candidate's box and score bit for bit.
    """
    import torch.nn.functional as F
    from torchvision.ops import boxes as box_ops

    heads = model.roi_heads
    original = heads.postprocess_detections

    def postprocess(class_logits, box_regression, proposals, image_shapes):
        boxes, scores, labels = original(class_logits, box_regression, proposals, image_shapes)
        per_image = [len(p) for p in proposals]
        candidates = heads.box_coder.decode(box_regression, proposals).split(per_image)
        probabilities = F.softmax(class_logits, -1).split(per_image)
        heads.class_scores = []
        for kept, kept_scores, kept_labels, boxes_, probs, shape in zip(
            boxes, scores, labels, candidates, probabilities, image_shapes, strict=True
        ):
            clipped = box_ops.clip_boxes_to_image(boxes_, shape)[:, kept_labels]  # (P, N, 4)
            same = (clipped == kept[None]).all(-1) & (probs[:, kept_labels] == kept_scores[None])
            found = probs[same.int().argmax(0)]
            found[~same.any(0)] = float("nan")  # not expected: same computation, same bits
            heads.class_scores.append(found)
        return boxes, scores, labels

    heads.postprocess_detections = postprocess


def build_model(name: str, weights: str | None, sha256: str | None = None):
    """A torchvision detection model in eval mode, with official/path weights or none."""
    import torchvision.models.detection as detection

    urls = {**PERSON_MODELS, **OBJECT_MODELS}
    if name not in urls:
        raise BackendUnavailable(f"detect backend 'torchvision': unknown model {name!r}")
    state = _load_state(weights, urls[name], sha256)
    model = getattr(detection, name)(weights=None, weights_backbone=None)
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


class TorchvisionDetector:
    """People with keypoints from keypoint R-CNN; other COCO classes from a box detector."""

    name = "torchvision"

    def __init__(self, settings: dict[str, Any]):
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(
                "detect backend 'torchvision': torch is not installed "
                "(pip install 'vidmine[torch]', or use workflow/envs/torch.yaml)"
            ) from exc
        options = settings.get("torchvision", {})
        self.torch = torch
        self.batch_size = int(settings.get("batch_size", 8))
        self.device = options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.score_threshold = float(options.get("score_threshold", 0.5))
        self.person_name = options.get("person_model", "keypointrcnn_resnet50_fpn")
        self.person = build_model(
            self.person_name,
            options.get("person_weights", "official"),
            options.get("person_sha256"),
        ).to(self.device)
        self.object_name = options.get("object_model")
        self.objects = None
        if self.object_name:
            self.objects = build_model(
                self.object_name,
                options.get("object_weights", "official"),
                options.get("object_sha256"),
            ).to(self.device)
            record_class_scores(self.objects)
        self.half = bool(options.get("half", False)) and self.device.startswith("cuda")

    def describe(self) -> dict[str, Any]:
        import torchvision

        return {
            "backend": self.name,
            "model": self.person_name + (f"+{self.object_name}" if self.object_name else ""),
            "torchvision": torchvision.__version__,
        }

    def _tensors(self, frames: list[np.ndarray]):
        torch = self.torch
        return [
            torch.from_numpy(f).to(self.device).permute(2, 0, 1).float().div_(255) for f in frames
        ]

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        with self.torch.inference_mode():
            images = self._tensors(frames)
            with self.torch.autocast(self.device.split(":")[0], enabled=self.half):
                people = self.person(images)
                objects = self.objects(images) if self.objects is not None else None
        out = []
        for i in range(len(frames)):
            parts = [people_to_detections(_numpy(people[i]), self.score_threshold)]
            if objects is not None:
                distribution = self.objects.roi_heads.class_scores[i].float().cpu().numpy()
                parts.append(
                    objects_to_detections(_numpy(objects[i]), self.score_threshold, distribution)
                )
            out.append(Detections.concat(parts))
        return out


def _numpy(output: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().float().cpu().numpy() for k, v in output.items()}


def people_to_detections(output: dict[str, np.ndarray], threshold: float) -> Detections:
    """keypoint R-CNN output (boxes, scores, labels, keypoints (N,17,3), keypoints_scores)."""
    keep = (output["scores"] >= threshold) & (output["labels"] == PERSON_CLASS_ID)
    keypoints = output["keypoints"][keep].astype(np.float32).copy()
    if "keypoints_scores" in output:
        # torchvision's third keypoint column is a visibility flag; the heatmap logit is the score
        keypoints[:, :, 2] = _sigmoid(output["keypoints_scores"][keep])
    return Detections(
        output["boxes"][keep].astype(np.float32),
        output["scores"][keep].astype(np.float32),
        np.full(int(keep.sum()), PERSON_CLASS_ID, np.int32),
        keypoints,
    )


def objects_to_detections(
    output: dict[str, np.ndarray], threshold: float, class_scores: np.ndarray | None = None
) -> Detections:
    """Box-detector output, people left out (keypoint R-CNN gives those, with keypoints);
    ``class_scores`` (N, 91): each box's class distribution (``record_class_scores``)."""
    keep = (output["scores"] >= threshold) & (output["labels"] != PERSON_CLASS_ID)
    return Detections(
        output["boxes"][keep].astype(np.float32),
        output["scores"][keep].astype(np.float32),
        output["labels"][keep].astype(np.int32),
        no_keypoints(int(keep.sum())),
        class_scores=None if class_scores is None else class_scores[keep].astype(np.float32),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
