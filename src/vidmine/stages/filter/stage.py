"""Filter stage: per-clip cartoon, technical-quality and motion scores, and a keep/drop decision.

Frames are sampled as TrackVerse does (2 fps over at most 8 s) and analysed at a fixed width so
scores do not depend on the source resolution.

The default cartoon scorer is a measured heuristic, offline and weight-free, conservative by
design: a real clip called a cartoon is data lost, so it only drops what it is sure of. It is
built on two observations (README, "Filter thresholds", has the numbers, measured on the
real-footage set in ``tests/real_footage``):
- drawn and stylised animation is *flat with crisp edges*: many pixels sit in regions with almost
  no gradient, and the pixels that do change are mostly strong edges. Camera footage can be flat
  too (a white wall, defocus), but then its changes are soft. ``flat_edge`` = flat fraction x
  share of strong edges among non-flat pixels captures both at once;
- rendered animation (Big Buck Bunny) is textured but *saturated*: a large share of its pixels
  are strongly saturated colours, which camera footage of the world rarely has.
  but so do real scenes (a campus camera's red tiles and lawns, food, a squirrel in leaves score
  as high as Big Buck Bunny), so this cue is off unless a dataset sets ``saturation_threshold``.
``cartoon_score`` is ``flat_edge`` over its threshold (and, when enabled, the larger of that and
the saturation ratio); a clip is a cartoon when it reaches 1. No weight-free cue separates
rendered animation from colourful real footage: the trained classifier (TrackVerse's ResNet-18,
``cartoon.backend: resnet18``) is the recommended setting for real datasets.

TrackVerse's aesthetic filter (CLIP ViT-L/14 embedding -> LAION linear head, mean score < 4.0
rejected) needs weights that do not ship with any package, so it is off by default
(``aesthetic.backend: none``, ``aesthetic_score`` NaN) and a configured backend when the user has
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from vidmine.frames import DecodeError, read_frames_at, sample_indices, shrink_to_width
from vidmine.layout import DatasetLayout
from vidmine.runner import ItemResult, ShardStage

FLAT_GRADIENT = 8.0  # Sobel magnitude under which a pixel counts as flat (8-bit scale)
STRONG_GRADIENT = 80.0  # Sobel magnitude of a crisp edge


def flat_edge(gray: np.ndarray) -> tuple[float, float]:
    """(flat fraction, flat fraction x share of strong edges among the non-flat pixels)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    magnitude = cv2.magnitude(gx, gy)
    flat = magnitude < FLAT_GRADIENT
    changing = magnitude[~flat]
    strong_share = float((changing >= STRONG_GRADIENT).mean()) if changing.size else 0.0
    return float(flat.mean()), float(flat.mean()) * strong_share


def saturated_fraction(frame: np.ndarray) -> float:
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    return float(((hsv[..., 1] > 128) & (hsv[..., 2] > 76)).mean())


def frame_scores(frame: np.ndarray) -> dict[str, float]:
    """Per-frame measures on a frame already resized to the analysis width."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    flat, edge = flat_edge(gray)
    return {
        "flat_fraction": flat,
        "flat_edge": edge,
        "saturated_fraction": saturated_fraction(frame),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),
        "luma": float(gray.mean()),
        "contrast": float(gray.std()),
    }


def motion_score(frame: np.ndarray, following: np.ndarray, dis: cv2.DISOpticalFlow) -> float:
    """Mean DIS optical-flow magnitude in pixels per frame at the analysis width."""
    a = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    b = cv2.cvtColor(following, cv2.COLOR_BGR2GRAY)
    flow = dis.calc(a, b, None)
    return float(cv2.magnitude(flow[..., 0], flow[..., 1]).mean())


class HeuristicCartoonScorer:
    """The offline default: crisp flatness above threshold, and saturation only when a dataset
    opts in (``saturation_threshold`` set; see module docstring)."""

    def __init__(self, settings: dict[str, Any]):
        self.flat_edge_threshold = settings["flat_edge_threshold"]
        self.saturation_threshold = settings.get("saturation_threshold")

    def __call__(self, frames: list[np.ndarray], scores: dict[str, float]) -> float:
        score = scores["flat_edge"] / self.flat_edge_threshold
        if self.saturation_threshold:
            score = max(score, scores["saturated_fraction"] / self.saturation_threshold)
        return score


def build_cartoon_scorer(settings: dict[str, Any]):
    if settings["backend"] == "heuristic":
        return HeuristicCartoonScorer(settings)
    from vidmine.stages.filter.backends.cartoon import (
        ResNetCartoonScorer,  # torch only when asked for
    )

    return ResNetCartoonScorer(settings)


def build_aesthetic_scorer(settings: dict[str, Any]) -> Callable[[list[np.ndarray]], float] | None:
    """None when the backend is off, so that clips are scored without torch or weights."""
    if settings["backend"] == "none":
        return None
    from vidmine.stages.filter.backends.aesthetic import (
        ClipAestheticScorer,  # torch only when asked for
    )

    return ClipAestheticScorer(settings)


def decide(scores: dict[str, float], settings: dict[str, Any]) -> list[str]:
    """Every reason the clip fails, in a fixed order; only reasons in ``reject`` drop it."""
    s = settings
    checks = [
        ("black", scores["luma"] < s["black_luma"]),
        ("low_resolution", scores["short_side"] < s["min_short_side"]),
        ("cartoon", scores["cartoon_score"] >= 1.0),
        ("low_aesthetic", scores["aesthetic_score"] < s["aesthetic"]["min_score"]),  # NaN: off
        ("dark", scores["luma"] < s["min_luma"]),
        ("bright", scores["luma"] > s["max_luma"]),
        ("low_contrast", scores["contrast"] < s["min_contrast"]),
        ("blurry", scores["sharpness"] < s["min_sharpness"]),
        ("static", scores["motion"] < s["min_motion"]),
    ]
    return [reason for reason, failed in checks if failed]


class FilterStage(ShardStage):
    """Score each clip; keep it (ok) or drop it with its reasons. All clips get a scores row."""

    name = "filter"

    def __init__(self, layout: DatasetLayout, shard: str, settings: dict[str, Any]):
        super().__init__(layout, shard, settings)
        self.cartoon = build_cartoon_scorer(settings["cartoon"])
        self.aesthetic = build_aesthetic_scorer(settings["aesthetic"])
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def score(self, item: dict[str, Any]) -> dict[str, float]:
        s = self.settings
        indices = sample_indices(
            int(item["n_frames"]), float(item["fps"]), s["sample_fps"], s["max_seconds"]
        )
        frames = read_frames_at(self.layout.root / item["path"], indices, with_next=True)
        sampled = [i for i in indices if i in frames]
        if not sampled:
            raise DecodeError("no frame could be decoded at the sampled positions")
        small = {i: shrink_to_width(f, s["analysis_width"]) for i, f in frames.items()}
        per_frame = [frame_scores(small[i]) for i in sampled]
        scores = {key: float(np.mean([f[key] for f in per_frame])) for key in per_frame[0]}
        scores["sharpness"] = float(np.median([f["sharpness"] for f in per_frame]))
        motions = [
            motion_score(small[i], small[i + 1], self.dis) for i in sampled if i + 1 in small
        ]
        scores["motion"] = float(np.mean(motions)) if motions else 0.0
        scores["short_side"] = float(min(item["width"], item["height"]))
        originals = [frames[i] for i in sampled]
        scores["cartoon_score"] = float(self.cartoon(originals, scores))
        scores["aesthetic_score"] = float(self.aesthetic(originals)) if self.aesthetic else np.nan
        scores["n_sampled"] = len(sampled)
        return scores

    def process(self, item: dict[str, Any]) -> ItemResult:
        if int(item.get("n_frames") or 0) <= 0:
            return ItemResult.failed("zero-length clip")
        try:
            scores = self.score(item)
        except DecodeError as exc:
            return ItemResult.failed(str(exc))
        reasons = decide(scores, self.settings)
        rejected = [r for r in reasons if r in self.settings["reject"]]
        row = {
            "clip_id": item["id"],
            "video_id": item["video_id"],
            **scores,
            "flags": ",".join(reasons),
            "decision": "drop" if rejected else "keep",
        }
        fields = {k: row[k] for k in ("cartoon_score", "sharpness", "motion", "flags")}
        fields["path"] = item["path"]
        if rejected:
            return ItemResult.dropped(rejected[0], fields=fields, rows=[row])
        return ItemResult.ok(fields=fields, rows=[row])
