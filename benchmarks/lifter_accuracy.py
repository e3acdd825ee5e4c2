"""Lifter accuracy with and without mixed precision: is the faster training as accurate?

``benchmarks/lifter.py`` measures speed; this trains the same model on the same synthetic
data to the end, in fp32 and with ``amp`` (bf16 on CPUs with native bf16 and on recent
GPUs, see ``vidmine.lifter.train``), over several seeds, and prints the test errors of
each and their difference. fp32 through vidmine's matrix-product forward equals the
original's Conv1d arithmetic to float rounding (tests/test_lifter.py checks it), so the
fp32 rows stand for the original code's accuracy.

    .venv/bin/python benchmarks/lifter_accuracy.py --epochs 15 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vidmine.lifter.config import DataConfig, TrainConfig, load_dataset
from vidmine.lifter.train import train

ARCHS = {27: (3, 3, 3), 81: (3, 3, 3, 3), 243: (3, 3, 3, 3, 3)}
METRICS = ("test_mpjpe_mm", "test_p_mpjpe_mm")


def run(amp: bool, seed: int, args, dataset, workdir: Path) -> dict:
    cfg = TrainConfig(
        filter_widths=ARCHS[args.rf],
        channels=args.channels,
        epochs=args.epochs,
        batch_size=args.batch,
        seed=seed,
        amp=amp,
        device=args.device,
    )
    started = time.perf_counter()
    out = workdir / f"amp{int(amp)}-seed{seed}.pt"
    final = train(cfg, DataConfig(), out, resume=None, dataset=dataset)
    last = final["vidmine"]["history"][-1]
    row = {k: last[k] for k in METRICS if k in last}
    row["seconds"] = time.perf_counter() - started
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rf", type=int, default=27, choices=sorted(ARCHS))
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--modes", default="fp32,amp", help="which of fp32, amp to train")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    dataset = load_dataset(DataConfig())
    modes = args.modes.split(",")
    results: dict[str, list[dict]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for name in modes:
                amp = name == "amp"
                results[name].append(run(amp, seed, args, dataset, Path(tmp)))
    print(f"{args.rf}-frame model, {args.channels} channels, {args.epochs} epochs, seeds {seeds}")
    for name, rows in results.items():
        cells = [f"{m[5:-3]} {statistics.mean(r[m] for r in rows):6.1f}" for m in METRICS]
        each = ", ".join(f"{r['test_mpjpe_mm']:.1f}" for r in rows)
        seconds = statistics.mean(r["seconds"] for r in rows)
        print(f"  {name:5s} {'  '.join(cells)} mm  (per seed {each}; {seconds:.0f} s per run)")
    if len(modes) == 2:
        pairs = zip(results["amp"], results["fp32"], strict=True)
        diff = [a["test_mpjpe_mm"] - f["test_mpjpe_mm"] for a, f in pairs]
        print(f"  amp - fp32 MPJPE per seed: {', '.join(f'{d:+.1f}' for d in diff)} mm")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
