"""VIPE* teacher training throughput (examples per second), on CPU and, when present, CUDA.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/embed_teacher.py                      # VPD's model, 2x1024
    .venv/bin/python benchmarks/embed_teacher.py --hidden 128 --blocks 1 --examples 1000

Cases, on the synthetic motion of the training subjects:

* ``draw``: examples drawn per second (cameras, projections, negatives, 3D targets; NumPy on
  the CPU whatever the device), the data half of an epoch;
* ``step``: optimiser steps on already drawn examples (encoder on three poses, decoder on two,
  VPD's loss, AdamW), the model half; mixed precision on CUDA, as training uses it;
* ``epoch``: one whole training epoch of ``train_teacher``'s loop (draw + steps).

Each case is repeated; min and median seconds and examples/s are printed, one line per case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from vidmine.embed.teacher import TeacherConfig, TeacherTrainer, _batches
from vidmine.embed.teacher_data import split_by_subject, synthetic_sequences


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_device(cfg: TeacherConfig, device: str, repeats: int) -> list[dict]:
    """The three cases on ``device``: one warm-up run each, then ``repeats`` timed runs."""
    cfg = TeacherConfig(**{**cfg.__dict__, "device": device})
    seqs = synthetic_sequences(frames=cfg.synthetic_frames)
    train, val = split_by_subject(seqs, cfg.subjects_train, cfg.subjects_test)
    trainer = TeacherTrainer(cfg, train, val[:0])
    n = cfg.examples_per_epoch
    examples = trainer.train_sampler.draw(n, np.random.default_rng(0))
    order = np.arange(n)

    def sync() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    def steps() -> None:
        trainer.encoder.train()
        trainer.decoder.train()
        for batch in _batches(examples, cfg.batch_size, trainer.device, order):
            trainer._step(batch)
        sync()

    def draw() -> None:
        trainer.train_sampler.draw(n, np.random.default_rng(1))

    def epoch() -> None:
        trainer.train_epoch(0)
        sync()

    rows = []
    for name, fn in (("draw", draw), ("step", steps), ("epoch", epoch)):
        fn()  # warm-up: first CUDA kernels, allocator, caches
        times = _timed(fn, repeats)
        rows.append(
            {
                "device": str(trainer.device),
                "case": name,
                "examples": n,
                "precision": str(trainer.amp_dtype or torch.float32).removeprefix("torch."),
                "min_s": min(times),
                "median_s": statistics.median(times),
                "max_examples_per_s": n / min(times),
                "median_examples_per_s": n / statistics.median(times),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hidden", type=int, default=TeacherConfig.hidden)
    p.add_argument("--blocks", type=int, default=TeacherConfig.blocks)
    p.add_argument("--batch", type=int, default=TeacherConfig.batch_size)
    p.add_argument("--examples", type=int, default=4000, help="examples per timed run")
    p.add_argument("--frames", type=int, default=110, help="synthetic frames per take")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", default="auto", help="auto (cpu, and cuda if present) or a list")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    p.add_argument("--json", help="also write all results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices != "auto" else ["cpu"]
    if args.devices == "auto" and torch.cuda.is_available():
        devices.append("cuda")
    cfg = TeacherConfig(
        hidden=args.hidden,
        blocks=args.blocks,
        batch_size=args.batch,
        examples_per_epoch=args.examples,
        val_examples=0,
        synthetic_frames=args.frames,
        threads=args.threads or None,
    )
    results = []
    for device in devices:
        for row in bench_device(cfg, device, args.repeats):
            results.append(row)
            print(
                f"{row['device']:>6} {row['case']:>5} {row['precision']:>8}: "
                f"min {row['min_s']:.3f} s, median {row['median_s']:.3f} s for {row['examples']} "
                f"= {row['max_examples_per_s']:,.0f} / {row['median_examples_per_s']:,.0f} "
                "examples/s (best / median)",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": cfg.to_dict(), "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
