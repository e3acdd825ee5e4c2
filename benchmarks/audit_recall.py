"""The optional auditors (dlib's two detectors, face-api's SSD): recall and precision on the
labelled faces, swept.

tests/test_privacy_recall.py measures the configured ensemble; this sweeps what the test does
not: ``dlib_cnn`` (MMOD) and ``dlib_hog`` at each ``upsample`` and score threshold, alone and
added to the default ensemble (MediaPipe full and short, MTCNN), against the blur's CenterFace.
Each detector runs once per upsample at its lowest threshold; higher thresholds are the same
boxes filtered by score (dlib's detectors report boxes independently of the threshold, apart
from the cut). ``faceapi_ssd`` likewise, at each ``--ssd-tiles`` tile side (0: the whole frame
only). Boxes and per-image times are cached in ``--cache`` (the CNN takes minutes).

    .venv/bin/python benchmarks/audit_recall.py [--cnn-upsample 0 1] [--hog-upsample 0 1 2]
        [--ssd-tiles 0 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from privacy_faces import drawn_images, lfw_mosaic, match, merged  # noqa: E402

from vidmine.config import validate_config  # noqa: E402
from vidmine.faces import FaceBlurrer  # noqa: E402
from vidmine.stages.audit.backends import (  # noqa: E402
    AuditEnsemble,
    DlibCnnAuditor,
    DlibHogAuditor,
    FaceApiSsdAuditor,
)
from vidmine.stages.audit.faceapi import FACE_API_TARBALL  # noqa: E402

CNN_SCORES = (0.0, 0.1, 0.2, 0.3, 0.5)
HOG_SCORES = (-0.5, -0.3, -0.2, -0.1, 0.0, 0.2, 0.5)
SSD_SCORES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
DEFAULT = ("mediapipe_full", "mediapipe_short", "mtcnn")  # the ensemble before dlib


def cached(cache: Path, key: str, images, run) -> tuple[list[np.ndarray], float]:
    """Boxes per image and the total seconds, from ``cache`` or by running ``run``."""
    path = cache / f"{key}.npz"
    if path.exists():
        data = np.load(path)
        return [data[f"b{k}"] for k in range(len(images))], float(data["seconds"])
    start = time.perf_counter()
    boxes = [run(image.image).reshape(-1, 5) for image in images]
    seconds = time.perf_counter() - start
    np.savez(path, seconds=seconds, **{f"b{k}": b for k, b in enumerate(boxes)})
    return boxes, seconds


def row(images, boxes) -> tuple[float, float, int]:
    """Recall and precision over all labelled images (the test's 'all labelled faces'), and
    the faces missed."""
    matched = [match(image, found) for image, found in zip(images, boxes, strict=True)]
    hit = np.concatenate([m.hit for m in matched])
    false = sum(m.false for m in matched)
    found = int(hit.sum())
    return found / len(hit), found / max(found + false, 1), len(hit) - found


def cells(scores: tuple[float, float, int]) -> str:
    return "{:.3f} {:.3f} {:3d}".format(*scores)


def union(*members: list[np.ndarray]) -> list[np.ndarray]:
    return [merged(np.concatenate(per_image)) for per_image in zip(*members, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "audit_recall")
    parser.add_argument("--cnn-upsample", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--hog-upsample", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--ssd-tiles", type=int, nargs="*", default=[0, 256])
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    images = [*drawn_images(args.cache / "media"), lfw_mosaic()]
    settings = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    detectors = {n: s for n, s in settings["audit"]["detectors"].items() if n in DEFAULT}
    blurrer = FaceBlurrer(settings["blur"])
    threshold = settings["blur"]["threshold"]
    blur, _ = cached(args.cache, "blur", images, lambda i: blurrer.detect(i, threshold))
    members = {}
    for auditor in AuditEnsemble(detectors).auditors:
        members[auditor.name], _ = cached(args.cache, auditor.name, images, auditor.faces)
    base = union(*members.values())
    print(f"{len(images)} labelled images; recall, precision, faces missed (all labelled faces)")
    print(f"{'':34s} {'alone':>22s} {'default ensemble + it':>26s}")
    print(f"{'blur (CenterFace)':34s} {cells(row(images, blur)):>22s}")
    for name, boxes in members.items():
        print(f"{name:34s} {cells(row(images, boxes)):>22s}")
    print(f"{'default ensemble':34s} {'':22s} {cells(row(images, base)):>26s}")
    best: dict[str, list[np.ndarray]] = {}
    for kind, ups, thresholds, make in [
        ("dlib_cnn", args.cnn_upsample, CNN_SCORES, DlibCnnAuditor),
        ("dlib_hog", args.hog_upsample, HOG_SCORES, DlibHogAuditor),
        ("faceapi_ssd", args.ssd_tiles, SSD_SCORES, make_ssd),
    ]:
        for up in ups:
            auditor = make(kind, min(thresholds), up, 1280)
            raw, seconds = cached(args.cache, f"{kind}_up{up}", images, auditor.faces)
            setting = "tile side" if kind == "faceapi_ssd" else "upsample"
            print(f"{kind} {setting} {up}: {seconds / len(images) * 1000:.0f} ms per image")
            for score in thresholds:
                kept = [b[b[:, 4] >= score] for b in raw]
                best[f"{kind} up{up} >= {score}"] = kept
                alone = cells(row(images, kept))
                added = cells(row(images, union(base, kept)))
                print(f"  {f'{kind} up{up} >= {score}':32s} {alone:>22s} {added:>26s}")
    print("default ensemble + dlib_cnn + dlib_hog (each pair of settings above):")
    for cnn in [k for k in best if k.startswith("dlib_cnn")]:
        for hog in [k for k in best if k.startswith("dlib_hog")]:
            added = cells(row(images, union(base, best[cnn], best[hog])))
            print(f"  {cnn} + {hog:22s} {added:>26s}")
    print("default ensemble + dlib_cnn up1 >= 0.0 + dlib_hog up2 >= -0.1 + faceapi_ssd:")
    dlib = [best[k] for k in ("dlib_cnn up1 >= 0.0", "dlib_hog up2 >= -0.1") if k in best]
    for ssd in [k for k in best if k.startswith("faceapi_ssd")]:
        added = cells(row(images, union(base, *dlib, best[ssd])))
        print(f"  {ssd:32s} {added:>26s}")


def make_ssd(name: str, min_score: float, tile_side: int, max_side: int) -> FaceApiSsdAuditor:
    return FaceApiSsdAuditor(name, min_score, tile_side, max_side, FACE_API_TARBALL)


if __name__ == "__main__":
    main()
