"""Recall and precision of the blur's detector and of each auditor on labelled real faces
(tests/privacy_faces), printed as tables (``pytest -s``), with floors under what was measured
and issue 18's target (the ensemble finds every face the blur finds) as a strict xfail: not met
yet. With ``VIDMINE_RECALL_DRAW=<folder>`` the blur's misses are drawn there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from privacy_faces import (
    LabelledImage,
    Matched,
    drawn_images,
    lfw_mosaic,
    match,
    merged,
    size_tier,
)

from vidmine.config import validate_config
from vidmine.faces import FaceBlurrer
from vidmine.stages.audit.backends import AuditEnsemble, shared_auditor

pytestmark = pytest.mark.slow


def default_settings() -> dict:
    return validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> list[LabelledImage]:
    return [*drawn_images(tmp_path_factory.mktemp("faces")), lfw_mosaic()]


@pytest.fixture(scope="module")
def detections(labelled) -> dict[str, list[np.ndarray]]:
    """Detector name -> boxes per labelled image: the blur's CenterFace as the blur runs it
    (threshold, ``detect_max_side``) and at full resolution, each auditor, the ensemble (their
    union, each face counted once), each optional auditor (off by default: dlib's, at its
    default settings) and the ensemble with them (what enabling them buys)."""
    settings = default_settings()
    threshold = settings["blur"]["threshold"]
    blurrer = FaceBlurrer(settings["blur"])
    full_size = FaceBlurrer({**settings["blur"], "detect_max_side": 100_000})
    detectors = settings["audit"]["detectors"]
    ensemble = AuditEnsemble(detectors)
    optional = [
        shared_auditor(name, json.dumps({**options, "enabled": True}, sort_keys=True))
        for name, options in detectors.items()
        if not options["enabled"]
    ]
    found = {
        "blur (CenterFace)": [blurrer.detect(i.image, threshold) for i in labelled],
        "CenterFace full-res": [full_size.detect(i.image, threshold) for i in labelled],
    }
    for auditor in [*ensemble.auditors, *optional]:
        found[auditor.name] = [auditor.faces(i.image) for i in labelled]
    names = [a.name for a in ensemble.auditors]
    found["audit ensemble"] = union(found, names, len(labelled))
    if optional:
        found[WITH_OPTIONAL] = union(found, names + [a.name for a in optional], len(labelled))
    return found


WITH_OPTIONAL = "ensemble + optional"


def union(found: dict[str, list[np.ndarray]], names: list[str], images: int) -> list[np.ndarray]:
    """The named detectors' boxes per image, each face counted once."""
    return [
        merged(np.concatenate([found[n][k].reshape(-1, 5) for n in names])) for k in range(images)
    ]


@pytest.fixture(scope="module")
def matches(labelled, detections) -> dict[str, list[Matched]]:
    """Detector name -> its match against the labels, per labelled image."""
    return {
        name: [match(image, boxes) for image, boxes in zip(labelled, found, strict=True)]
        for name, found in detections.items()
    }


def scores(labelled, matched, keep=lambda image: True) -> dict:
    hits, tiers, views, false = [], [], [], 0
    for image, result in zip(labelled, matched, strict=True):
        if not keep(image):
            continue
        hits.append(result.hit)
        tiers.append(size_tier(image.faces))
        views += image.views
        false += result.false
    hit, tier, view = np.concatenate(hits), np.concatenate(tiers), np.array(views)
    found = int(hit.sum())
    row = {"faces": len(hit), "recall": found / len(hit)}
    for name, mask in [*((t, tier == t) for t in ("small", "medium", "large")),
                       *((v, view == v) for v in ("profile", "tilted", "occluded"))]:  # fmt: skip
        row[name] = f"{hit[mask].sum()}/{mask.sum()}"
    row["precision"] = found / max(found + false, 1)
    return row


def print_table(title: str, rows: dict[str, dict]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"\n{title}\n{'':20s}" + "".join(f"{c:>10s}" for c in columns))
    for name, row in rows.items():
        cells = [f"{v:10.3f}" if isinstance(v, float) else f"{v!s:>10s}" for v in row.values()]
        print(f"{name:20s}" + "".join(cells))


PARTS = {
    "all labelled faces": lambda image: True,
    "drawn (photographs and demo video)": lambda image: image.source != "lfw mosaic",
    "demo video frames": lambda image: image.source == "demo video",
    "lfw mosaic (25 px)": lambda image: image.source == "lfw mosaic",
}


@pytest.fixture(scope="module")
def table(labelled, matches) -> dict[str, dict[str, dict]]:
    """Part -> detector -> scores; printed."""
    table = {}
    for part, keep in PARTS.items():
        table[part] = {name: scores(labelled, matched, keep) for name, matched in matches.items()}
        print_table(f"{part}: recall (IoU >= 0.3), hits per tier, precision", table[part])
    return table


def test_recall_of_the_blur_and_the_audit_on_labelled_real_faces(labelled, matches, table):
    """Floors a little under what was measured (README's privacy section has the table), and
    what the pipeline releases: a face is hidden if the blur or the audit's re-blur finds it."""
    drawn = sum(len(i.faces) for i in labelled if i.source != "lfw mosaic")
    everything = table["all labelled faces"]
    assert drawn >= 140 and everything["audit ensemble"]["faces"] >= 150
    assert everything["blur (CenterFace)"]["recall"] >= 0.97  # measured 0.996
    assert everything["audit ensemble"]["recall"] >= 0.935  # measured 0.951
    assert everything["audit ensemble"]["precision"] >= 0.97  # measured 0.996
    # the optional auditors (off by default: dlib's two, face-api's SSD) add faces it misses
    with_dlib = everything[WITH_OPTIONAL]
    assert with_dlib["recall"] > everything["audit ensemble"]["recall"]
    assert with_dlib["recall"] >= 0.96 and with_dlib["precision"] >= 0.97  # 0.980, 0.980
    blur_missed = caught = audit_missed = 0
    for blur, audit in zip(matches["blur (CenterFace)"], matches["audit ensemble"], strict=True):
        by_blur, by_audit = blur.hit, audit.hit
        blur_missed += int((~by_blur).sum())
        caught += int((~by_blur & by_audit).sum())
        audit_missed += int((by_blur & ~by_audit).sum())
    print(f"\nthe blur misses {blur_missed} labelled faces, the audit finds {caught} of them;"
          f" the audit misses {audit_missed} faces the blur finds")  # fmt: skip
    draw_misses(labelled, matches["blur (CenterFace)"])


def test_the_reports_recall_figures_are_the_measured_ones(table):
    """report/audit.html shows ``stages/audit/measured_recall.csv``; it must be what this test
    measures (the failure prints the file's new content)."""
    from vidmine.stages.audit.report import MEASURED_RECALL, read_measured_recall

    rows = [
        {"part": part, "detector": name, "faces": row["faces"],
         "recall": round(row["recall"], 3), "precision": round(row["precision"], 3)}
        for part, detectors in table.items()
        for name, row in detectors.items()
    ]  # fmt: skip
    measured = pd.DataFrame(rows)
    committed = read_measured_recall()
    text = measured.to_csv(index=False, lineterminator="\n")
    stale = f"{MEASURED_RECALL.name} is stale; its content now:\n{text}"
    keys = ["part", "detector", "faces"]
    assert committed[keys].equals(measured[keys]), stale  # a detector added or removed
    # within two faces of 147: OpenCV's DNN and OpenVINO may round differently on other CPUs
    for column in ("recall", "precision"):
        assert np.allclose(committed[column], measured[column], atol=0.015), stale


@pytest.mark.xfail(
    strict=True,
    reason="issue 18's target, not met: CenterFace finds faces under drawn bars and some large "
    "faces that none of MediaPipe's two models and MTCNN finds (docs/privacy.md)",
)
def test_the_audit_ensemble_finds_every_face_the_blur_finds(table):
    for part, rows in table.items():
        assert rows["audit ensemble"]["recall"] >= rows["blur (CenterFace)"]["recall"], part


def draw_misses(labelled: list[LabelledImage], matched: list[Matched]) -> None:
    """Each face the blur's detector missed, outlined in red on its image."""
    if not os.environ.get("VIDMINE_RECALL_DRAW"):
        return
    folder = Path(os.environ["VIDMINE_RECALL_DRAW"])
    folder.mkdir(parents=True, exist_ok=True)
    for index, (image, result) in enumerate(zip(labelled, matched, strict=True)):
        if result.hit.all():
            continue
        canvas = image.image.copy()
        for x1, y1, x2, y2 in image.faces[~result.hit].astype(int):
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 0, 255), 2)
        cv2.imwrite(str(folder / f"miss_{index:03d}.png"), canvas)
    print(f"\nthe blur's misses are drawn in {folder}")


def test_the_labels_are_inside_their_images_and_cover_each_view(labelled):
    views = set()
    for image in labelled:
        height, width = image.image.shape[:2]
        assert (image.faces[:, 2] > image.faces[:, 0]).all() and (image.faces >= 0).all()
        assert (image.faces[:, 2] <= width + 1).all() and (image.faces[:, 3] <= height + 1).all()
        views |= set(image.views)
    assert {"frontal", "profile", "tilted", "occluded"} <= views
    tiers = np.concatenate([size_tier(i.faces) for i in labelled])
    assert {"small", "medium", "large"} <= set(tiers)
