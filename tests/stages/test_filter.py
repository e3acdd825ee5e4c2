"""Clip filter: the demo's decisions, labelled cartoon cases with precision/recall, quality
reasons on clips built here, bad input, and the ResNet-18 weights path."""

import hashlib

import cv2
import numpy as np
import pytest

from vidmine.config import validate_config
from vidmine.frames import VideoWriter, read_frames_at, shrink_to_width
from vidmine.layout import DatasetLayout
from vidmine.probing import probe_video
from vidmine.stages.filter.stage import FilterStage, HeuristicCartoonScorer, frame_scores


def settings(**overrides):
    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}, "filter": overrides}}})
    return config["datasets"]["d"]["filter"]


def clip_item(path, clip_id="c"):
    facts = probe_video(path)
    return {
        "id": clip_id,
        "video_id": "v",
        "path": str(path),
        "fps": facts["fps"],
        "n_frames": facts["n_frames"],
        "width": facts["width"],
        "height": facts["height"],
    }


@pytest.fixture
def stage(results):
    return FilterStage(DatasetLayout(results, "d"), "s00000", settings())


DEMO_CARTOON = {"saturation_threshold": 0.25}  # the demo config's opt-in saturation cue


@pytest.mark.parametrize(
    ("name", "status"), [("bigbuckbunny", "dropped"), ("carphone", "ok"), ("bikes", "ok")]
)
def test_demo_cartoon_is_dropped_and_real_videos_kept(results, demo_videos, name, status):
    stage = FilterStage(DatasetLayout(results, "d"), "s00000", settings(cartoon=DEMO_CARTOON))
    result = stage.process(clip_item(demo_videos[name]))
    assert result.status == status, result.rows
    if status == "dropped":
        assert result.reason == "cartoon"
    assert result.rows[0]["decision"] == ("drop" if status == "dropped" else "keep")


def quantize(frame, colours=8):
    pixels = frame.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, labels, centres = cv2.kmeans(pixels, colours, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return centres.astype(np.uint8)[labels.ravel()].reshape(frame.shape)


def flat_animation_frame(seed):
    """A flat-colour animation frame: filled shapes with dark outlines, JPEG-compressed."""
    rng = np.random.default_rng(seed)
    image = np.full((272, 480, 3), rng.integers(0, 255, 3), np.uint8)
    for _ in range(rng.integers(4, 12)):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y, r = int(rng.integers(0, 480)), int(rng.integers(0, 272)), int(rng.integers(10, 80))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), r, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (x, y), (x + 2 * r, y + r), colour, -1)
        cv2.circle(image, (x, y), r, (0, 0, 0), 2, cv2.LINE_AA)
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


@pytest.mark.parametrize("cartoon", [{}, DEMO_CARTOON], ids=["default", "with_saturation"])
def test_cartoon_heuristic_precision_and_recall_on_labelled_cases(demo_videos, cartoon):
    """Real frames (negatives) against cartoonised versions of the same frames and flat-colour
    animation (positives). Prints the measured precision and recall; the conservative default
    calls no real frame a cartoon and catches flat animation, not every stylised frame (real
    footage is tested in tests/test_real_footage.py)."""
    real = [
        *read_frames_at(demo_videos["bikes"], list(range(0, 250, 12))).values(),
        *read_frames_at(demo_videos["carphone"], list(range(0, 120, 12))).values(),
    ]
    cases = [(f, False, "real") for f in real]
    cases += [(cv2.stylization(f, sigma_s=60, sigma_r=0.45), True, "stylization") for f in real]
    cases += [
        (
            quantize(cv2.edgePreservingFilter(f, flags=1, sigma_s=60, sigma_r=0.4)),
            True,
            "edge-preserving + 8 colours",
        )
        for f in real
    ]
    cases += [(flat_animation_frame(seed), True, "flat animation") for seed in range(20)]
    scorer = HeuristicCartoonScorer(settings(cartoon=cartoon)["cartoon"])
    predicted = [scorer([f], frame_scores(shrink_to_width(f, 320))) >= 1.0 for f, _, _ in cases]
    truth = [label for _, label, _ in cases]
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    precision, recall = tp / max(sum(predicted), 1), tp / sum(truth)
    for kind in dict.fromkeys(k for _, _, k in cases):
        hits = [p for p, (_, _, k) in zip(predicted, cases, strict=True) if k == kind]
        print(f"{kind:28s} n={len(hits):3d} called cartoon: {sum(hits) / len(hits):.0%}")
    print(f"precision {precision:.3f} recall {recall:.3f} on {len(cases)} labelled frames")
    assert precision == 1.0
    flat = [p for p, (_, _, k) in zip(predicted, cases, strict=True) if k == "flat animation"]
    assert np.mean(flat) >= 0.9


def write_clip(path, frames, fps=25.0):
    h, w = frames[0].shape[:2]
    writer = VideoWriter(path, w, h, fps, crf=10)
    for frame in frames:
        writer.write(frame)
    writer.close()
    return path


@pytest.fixture
def real_frames(demo_videos):
    return [
        f for _, f in sorted(read_frames_at(demo_videos["bikes"], list(range(137, 187))).items())
    ]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda fs: [np.zeros_like(f) for f in fs], "black"),
        (lambda fs: [fs[0]] * len(fs), "static"),
        (lambda fs: [(f * 0.12).astype(np.uint8) for f in fs], "dark"),
        (lambda fs: [cv2.GaussianBlur(f, (0, 0), 6) for f in fs], "blurry"),
        (lambda fs: [cv2.resize(f, (160, 68)) for f in fs], "low_resolution"),
        (lambda fs: [np.clip(f * 0.1 + 120, 0, 255).astype(np.uint8) for f in fs], "low_contrast"),
    ],
)
def test_quality_reasons(stage, tmp_path, real_frames, make, reason):
    clip = write_clip(tmp_path / f"{reason}.mp4", make(real_frames))
    result = stage.process(clip_item(clip))
    assert result.status == "dropped"
    assert reason in result.rows[0]["flags"].split(",")


def test_original_quality_clip_is_kept(stage, tmp_path, real_frames):
    result = stage.process(clip_item(write_clip(tmp_path / "real.mp4", real_frames)))
    assert result.status == "ok", result.rows[0]["flags"]


def test_reasons_outside_reject_are_only_recorded(results, tmp_path, real_frames):
    keep_static = FilterStage(
        DatasetLayout(results, "d"), "s00000", settings(reject=["black", "cartoon"])
    )
    result = keep_static.process(clip_item(write_clip(tmp_path / "s.mp4", [real_frames[0]] * 20)))
    assert result.status == "ok" and "static" in result.rows[0]["flags"]


def test_bad_clips_fail_with_a_reason(stage, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    item = {
        "id": "b",
        "video_id": "v",
        "path": str(broken),
        "fps": 25.0,
        "n_frames": 10,
        "width": 64,
        "height": 64,
    }
    assert stage.process(item).status == "failed"
    assert stage.process({**item, "n_frames": 0}).reason == "zero-length clip"


def test_resnet18_backend_loads_weights_by_url_with_checksum(
    results, http_server, tmp_path, monkeypatch, demo_videos
):
    """TrackVerse's classifier layout with random weights, fetched from a local server."""
    import torch

    from conftest import VideoServer
    from vidmine.stages.filter.backends.cartoon import build_model
    from vidmine.weights import WeightsError

    torch.manual_seed(0)
    weights = tmp_path / "cartoon_detector.pth"
    torch.save(build_model().state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    VideoServer.files["cartoon_detector"] = weights
    monkeypatch.setenv("VIDMINE_CACHE", str(tmp_path / "cache"))
    url = f"{http_server}/video/cartoon_detector.pth"
    backend = {"backend": "resnet18", "weights": url, "sha256": digest[:16]}
    stage = FilterStage(DatasetLayout(results, "d"), "s00000", settings(cartoon=backend))
    row = stage.process(clip_item(demo_videos["carphone"])).rows[0]
    assert np.isfinite(row["cartoon_score"])
    assert (tmp_path / "cache" / "weights" / "cartoon_detector.pth").exists()
    with pytest.raises(WeightsError, match="SHA-256 does not match"):
        FilterStage(
            DatasetLayout(results, "d"), "s00000", settings(cartoon={**backend, "sha256": "0" * 64})
        )
    assert not (tmp_path / "cache" / "weights" / "cartoon_detector.pth").exists()
