"""VPD student training throughput (crops per second), on the CPU and on CUDA when present.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/embed_student.py                      # VPD's sizes
    .venv/bin/python benchmarks/embed_student.py --arch resnet18 --img-dim 64 --batch 16 \
        --steps 3 --repeats 3 --json out.json

The crops are written once to a temporary VPD crop folder (moving discs with their previous
crop, mask and flow PNGs) with teacher features of the same format, so the timed path is the
real one: PNG decoding, VPD's augmentations (colour jitter, mask noise, flip, random resized
crop), the ResNet step (summed MSE, AdamW; fp16 autocast on CUDA as VPD).

Cases, per device:
  * ``data``: samples per second of the loader alone (no model): what bounds a GPU;
  * ``train``: crops per second of whole training steps (loader included), after a warm-up.
Each case runs ``--repeats`` times; the table gives the minimum and the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vidmine.embed.student import StudentConfig, StudentTrainer
from vidmine.embed.student_data import load_frames
from vidmine.formats.vpd import (
    VpdFeature,
    crop_file_names,
    encode_flow_png,
    features_path,
    write_vpd_features,
)


def write_crops(root: Path, tracks: int, frames: int, size: int, emb_dim: int) -> None:
    """``root/crops/<track>/`` with rgb, prev, mask and flow PNGs, ``root/embs`` teacher rows."""
    rng = np.random.default_rng(0)
    for i in range(tracks):
        folder = root / "crops" / f"track{i}"
        folder.mkdir(parents=True)
        start, speed = rng.uniform(0.3, 0.7, 2) * size, rng.uniform(-2, 2, 2)
        features = []
        for t in range(frames):
            names = crop_file_names(t)
            images = []
            for step in (t, max(t - 1, 0)):
                image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
                centre = tuple(int(v) for v in np.clip(start + speed * step, 0, size - 1))
                cv2.circle(image, centre, size // 5, (200, 180, 160), -1)
                images.append(image)
            mask = (images[0][..., 0] == 160).astype(np.uint8) * 255
            flow = np.zeros((size, size, 2), np.float32)
            flow[mask > 0] = speed
            for name, image in (
                (names["rgb"], images[0]),
                (names["prev"], images[1]),
                (names["mask"], mask),
                (names["flow"], encode_flow_png(flow)),
            ):
                cv2.imwrite(str(folder / name), image)
            emb = rng.normal(0, 1, (2, emb_dim)).astype(np.float32)
            features.append(VpdFeature(t, emb, {"kp_score": 0.9}))
        write_vpd_features(features_path(root / "embs", folder.name), features)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_case(case: str, trainer: StudentTrainer, args) -> float:
    """Crops (or samples) per second over ``args.steps`` batches after ``args.warmup``."""
    batches = args.warmup + args.steps
    trainer.data.set_epoch(0, 0, batches * args.batch)
    trainer.encoder.train()
    done, t0 = 0, None
    for i, batch in enumerate(trainer._loader(trainer.data)):
        if i == args.warmup:
            _sync(trainer.device)
            t0 = time.perf_counter()
        if case == "train":
            trainer._step(batch)
        elif trainer.device.type == "cuda":
            batch["img"].to(trainer.device, non_blocking=True)
        if i >= args.warmup:
            done += len(batch["img"])
    _sync(trainer.device)
    return done / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="resnet34", help="VPD's default encoder")
    p.add_argument("--img-dim", type=int, default=128)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--emb-dim", type=int, default=32, help="VIPE's default embedding width")
    p.add_argument("--no-flow", action="store_true", help="RGB only (3 channels)")
    p.add_argument("--steps", type=int, default=5, help="timed batches per repeat")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--devices", default="cpu,cuda", help="devices to try (cuda when present)")
    p.add_argument("--tracks", type=int, default=4)
    p.add_argument("--frames", type=int, default=25)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    report: dict = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_crops(root, args.tracks, args.frames, args.img_dim, args.emb_dim)
        for device in devices:
            cfg = StudentConfig(
                arch=args.arch,
                img_dim=args.img_dim,
                flow_name=None if args.no_flow else "flow",
                batch_size=args.batch,
                holdout_fraction=0.0,
                device=device,
                workers=args.workers,
            )
            frames = load_frames(root / "embs", [root / "crops"], flow_name=cfg.flow_name)
            trainer = StudentTrainer(cfg, frames, root / "unused.pt")
            name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
            print(f"{device} ({name}), {args.arch} {args.img_dim}px batch {args.batch}", flush=True)
            for case in ("data", "train"):
                rates = [run_case(case, trainer, args) for _ in range(args.repeats)]
                row = {"min": min(rates), "median": statistics.median(rates), "all": rates}
                report[f"{device}_{case}"] = row
                unit = "samples/s" if case == "data" else "crops/s"
                print(f"  {case:6s} min {row['min']:9.1f}  median {row['median']:9.1f} {unit}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
