"""Lifter throughput: vidmine's training/inference path against the original code's approach.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/lifter.py                 # 27- and 243-frame models
    .venv/bin/python benchmarks/lifter.py --archs 27 --steps 3 --json out.json

Every case runs in its own subprocess so that peak memory (max RSS, and peak CUDA memory
on a GPU) belongs to that case alone. Cases, on the same synthetic data and hardware:

data path (``gen``): frames per second of batches produced, without the model.

training (output frames per second, one Adam step per batch, flip augmentation on):
  * ``orig-1f``: the original default path - a per-batch NumPy generator that loops over
    chunks, edge-pads and flips each one (written here from docs/formats/videopose3d.md,
    "Generators, padding and flipping"), feeding the strided one-frame model.
  * ``orig-dilated``: the original with ``--disable-optimizations``: same generator, the
    dilated full model over each padded window.
  * ``vidmine-fp32``: pre-padded/pre-flipped data gathered with one index op (on the device),
    the strided model computed as matrix products (``TemporalModelOptimized1f.forward``), fp32.
  * ``vidmine``: the same with the precision training really uses (``amp: true``): bf16
    autocast on CPUs with native bf16 and on GPUs, fp32 elsewhere (``amp_dtype_for``);
    ``vidmine-compile`` adds ``torch.compile``.
  The ``orig-*`` cases run the original's Conv1d arithmetic (``conv_forward``) and PyTorch's
  ``nn.Dropout`` in fp32, as the original code does on any hardware; the ``vidmine`` cases use
  ``FastDropout`` (a cheaper mask on CPU).

inference (frames per second over the test subjects, with flip averaging):
  * ``orig``: per sequence NumPy edge padding + flipped copy, dilated model, BN unfused.
  * ``vidmine``: BN folded into the convolutions, ``torch.inference_mode``;
    ``vidmine-compile`` adds ``torch.compile``.

All cases share the same parameters and weights layout. The fp32 cases compute the same
function (tests/test_lifter.py checks the matrix-product forward against Conv1d); whether bf16
training is as accurate is measured by ``benchmarks/lifter_accuracy.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vidmine.lifter.config import DataConfig, load_dataset
from vidmine.lifter.evaluate import predict
from vidmine.lifter.generators import ChunkSampler
from vidmine.lifter.metrics import mpjpe_loss
from vidmine.lifter.model import (
    TemporalModel,
    TemporalModelOptimized1f,
    fuse_for_inference,
)
from vidmine.lifter.train import amp_dtype_for

ARCHS = {27: (3, 3, 3), 81: (3, 3, 3, 3), 243: (3, 3, 3, 3, 3)}
TRAIN_CASES = ("orig-1f", "orig-dilated", "vidmine-fp32", "vidmine", "vidmine-compile")
INFER_CASES = ("orig", "vidmine", "vidmine-compile")
GEN_CASES = ("orig", "vidmine")


class OriginalStyleGenerator:
    """The original ChunkedGenerator's data path: a Python loop over chunks per batch."""

    def __init__(self, sequences, layout, pad: int, batch_size: int, augment: bool = True):
        self.seqs, self.pad, self.batch_size = sequences, pad, batch_size
        self.kps_left, self.kps_right = list(layout.left), list(layout.right)
        self.joints_left, self.joints_right = [4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]
        flips = (False, True) if augment else (False,)
        self.pairs = [
            (i, f, flip) for flip in flips for i, s in enumerate(sequences) for f in range(len(s))
        ]
        self.random = np.random.RandomState(1234)
        j_in = sequences[0].pos2d.shape[1]
        self.batch_2d = np.empty((batch_size, 1 + 2 * pad, j_in, 2))
        self.batch_3d = np.empty((batch_size, 1, 17, 3))

    def next_epoch(self):
        pairs = self.random.permutation(len(self.pairs))
        for b in range(0, len(pairs), self.batch_size):
            chunk = pairs[b : b + self.batch_size]
            for i, k in enumerate(chunk):
                self._fill(i, *self.pairs[k])
            n = len(chunk)
            yield self.batch_3d[:n], self.batch_2d[:n]

    def _fill(self, i: int, seq_idx: int, frame: int, flip: bool) -> None:
        seq = self.seqs[seq_idx]
        start, end = frame - self.pad, frame + self.pad + 1
        low, high = max(start, 0), min(end, len(seq))
        pad_left, pad_right = low - start, end - high
        window = seq.pos2d[low:high]
        if pad_left or pad_right:
            window = np.pad(window, ((pad_left, pad_right), (0, 0), (0, 0)), "edge")
        self.batch_2d[i] = window
        self.batch_3d[i] = seq.pos3d[frame : frame + 1]
        if flip:
            self.batch_2d[i, :, :, 0] *= -1
            lr, rl = self.kps_left + self.kps_right, self.kps_right + self.kps_left
            self.batch_2d[i, :, lr] = self.batch_2d[i, :, rl]
            self.batch_3d[i, :, :, 0] *= -1
            lr, rl = self.joints_left + self.joints_right, self.joints_right + self.joints_left
            self.batch_3d[i, :, lr] = self.batch_3d[i, :, rl]


def _peak_memory_mb(device: torch.device) -> dict:
    out = {"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step(model, opt, inputs: torch.Tensor, target: torch.Tensor, amp_dtype=None) -> None:
    target = target.clone()
    target[:, :, 0] = 0
    device_type = inputs.device.type
    with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
        pred = model(inputs)
    loss = mpjpe_loss(pred.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _orig_batches(ds, widths, args, device):
    pad = (np.prod(widths) - 1) // 2
    gen = OriginalStyleGenerator(ds.select(args.train_subjects), ds.input_layout, pad, args.batch)
    for batch_3d, batch_2d in gen.next_epoch():
        yield (
            torch.from_numpy(batch_2d.astype("float32")).to(device),
            torch.from_numpy(batch_3d.astype("float32")).to(device),
        )


def _vidmine_batches(ds, widths, args, device):
    pad = (np.prod(widths) - 1) // 2
    sampler = ChunkSampler(ds.select(args.train_subjects), ds.input_layout, pad, device=device)
    for batch in sampler.epoch(args.batch, np.random.default_rng(0)):
        yield batch.inputs_2d, batch.target_3d


def run_train_case(case: str, rf: int, args, device: torch.device) -> dict:
    """Frames/s of training steps (data path included) after ``args.warmup`` steps."""
    ds = load_dataset(DataConfig(synthetic_frames=args.frames))
    widths = ARCHS[rf]
    torch.manual_seed(0)
    cls = TemporalModel if case == "orig-dilated" else TemporalModelOptimized1f
    model = cls(ds.input_layout.num_joints, 2, 17, widths, channels=args.channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    if case.startswith("orig"):  # the original's dropout; vidmine's FastDropout is its own
        model.drop = torch.nn.Dropout(model.drop.p)
    forward = model.conv_forward if case == "orig-1f" else model
    fn = torch.compile(forward) if case.endswith("compile") else forward
    amp_dtype = amp_dtype_for(device) if case in ("vidmine", "vidmine-compile") else None
    batches = (_orig_batches if case.startswith("orig") else _vidmine_batches)(
        ds, widths, args, device
    )
    t_start = None
    frames = 0
    for i, (inputs, target) in enumerate(batches):
        if i == args.warmup:
            _sync(device)
            t_start = time.perf_counter()
        _step(fn, opt, inputs, target, amp_dtype)
        if i >= args.warmup:
            frames += len(inputs)
        if i + 1 >= args.warmup + args.steps:
            break
    _sync(device)
    seconds = time.perf_counter() - t_start
    return {"frames_per_s": frames / seconds, "seconds": seconds, **_peak_memory_mb(device)}


def run_gen_case(case: str, rf: int, args, device: torch.device) -> dict:
    """Frames/s of the data path alone (batches ready on the device, no model).

    This bounds training speed on a GPU, where the model step is a few milliseconds.
    """
    ds = load_dataset(DataConfig(synthetic_frames=args.frames))
    batches = (_orig_batches if case == "orig" else _vidmine_batches)(ds, ARCHS[rf], args, device)
    frames, t0 = 0, None
    for i, (inputs, _target) in enumerate(batches):
        if i == args.warmup:
            _sync(device)
            t0 = time.perf_counter()
        if i >= args.warmup:
            frames += len(inputs)
        if i + 1 >= args.warmup + 4 * args.steps:
            break
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"frames_per_s": frames / seconds, "seconds": seconds, **_peak_memory_mb(device)}


def _orig_predict(model: TemporalModel, seq, layout, pad: int, device) -> np.ndarray:
    """The original evaluation path: NumPy edge pad, flipped copy, dilated model, average."""
    kp = np.expand_dims(np.pad(seq.pos2d, ((pad, pad), (0, 0), (0, 0)), "edge"), 0)
    flipped = kp.copy()
    flipped[:, :, :, 0] *= -1
    lr, rl = list(layout.left) + list(layout.right), list(layout.right) + list(layout.left)
    flipped[:, :, lr] = flipped[:, :, rl]
    with torch.no_grad():
        x = torch.from_numpy(np.concatenate([kp, flipped]).astype("float32")).to(device)
        y = model(x).cpu().numpy()
    y[1, :, :, 0] *= -1
    y[1, :, [4, 5, 6, 11, 12, 13, 1, 2, 3, 14, 15, 16]] = y[
        1, :, [1, 2, 3, 14, 15, 16, 4, 5, 6, 11, 12, 13]
    ]
    return y.mean(axis=0)


def run_infer_case(case: str, rf: int, args, device: torch.device) -> dict:
    """Frames/s of whole-sequence prediction with flip averaging over the test subjects."""
    ds = load_dataset(DataConfig(synthetic_frames=args.frames))
    seqs = ds.select(args.test_subjects)
    torch.manual_seed(0)
    model = TemporalModel(ds.input_layout.num_joints, 2, 17, ARCHS[rf], channels=args.channels)
    model = model.to(device).eval()
    pad = (model.receptive_field() - 1) // 2
    if case == "orig":
        run = lambda s: _orig_predict(model, s, ds.input_layout, pad, device)  # noqa: E731
    else:
        fused = fuse_for_inference(model)
        fn = torch.compile(fused, dynamic=True) if case.endswith("compile") else fused

        def run(s):
            with torch.inference_mode():
                return predict(fn, s.pos2d, ds.input_layout, tta=True, device=device)

    for s in seqs[: args.warmup]:
        run(s)
    _sync(device)
    t0 = time.perf_counter()
    frames = 0
    for _ in range(args.repeat):
        for s in seqs:
            run(s)
            frames += len(s)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"frames_per_s": frames / seconds, "seconds": seconds, **_peak_memory_mb(device)}


def _child(args) -> None:
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    torch.set_num_threads(args.threads or torch.get_num_threads())
    kind, case = args.case.split(":", 1)
    fn = {"train": run_train_case, "infer": run_infer_case, "gen": run_gen_case}[kind]
    print(json.dumps(fn(case, args.rf, args, device)))


def _run_child(kind: str, case: str, rf: int, argv: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--case", f"{kind}:{case}", "--rf", str(rf), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(kind: str, rf: int, results: dict, base: str, second: str | None) -> list[str]:
    title = {"train": "training", "infer": "inference", "gen": "data path only"}[kind]
    lines = [f"{title}, {rf}-frame model"]
    for case, r in results.items():
        if "error" in r:
            lines.append(f"  {case:16s} error: {r['error']}")
            continue
        ratio = r["frames_per_s"] / results[base]["frames_per_s"]
        extra = ""
        if second and second in results and "error" not in results[second]:
            extra = f"  x{r['frames_per_s'] / results[second]['frames_per_s']:.2f} vs {second}"
        mem = f"rss {r['max_rss_mb']:.0f} MB"
        if "cuda_peak_mb" in r:
            mem += f", cuda {r['cuda_peak_mb']:.0f} MB"
        speed = f"{r['frames_per_s']:10.0f} frames/s  x{ratio:.2f} vs {base}{extra}"
        lines.append(f"  {case:16s} {speed}  ({mem})")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--archs", default="27,243", help="receptive fields to run (27, 81, 243)")
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1024, help="training batch (output frames)")
    p.add_argument("--batch-243", type=int, default=256, help="training batch for 243 frames")
    p.add_argument("--steps", type=int, default=4, help="timed training steps")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="passes over the test set (inference)")
    p.add_argument("--frames", type=int, default=200, help="synthetic frames per sequence")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cases", default="", help="comma list to restrict, e.g. train:vidmine")
    p.add_argument("--json", help="also write all results here")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--rf", type=int, default=27, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.train_subjects = ("S1", "S5", "S6", "S7", "S8")
    args.test_subjects = ("S9", "S11")
    if args.case:
        if args.rf == 243:
            args.batch = args.batch_243
        _child(args)
        return 0
    common = [
        "--channels",
        str(args.channels),
        "--batch",
        str(args.batch),
        "--batch-243",
        str(args.batch_243),
    ]
    common += [
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--repeat",
        str(args.repeat),
    ]
    common += [
        "--frames",
        str(args.frames),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    wanted = set(filter(None, args.cases.split(",")))
    report: dict = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    lines = []
    for rf in (int(a) for a in args.archs.split(",")):
        for kind, cases, base, second in (
            ("train", TRAIN_CASES, "orig-1f", "orig-dilated"),
            ("infer", INFER_CASES, "orig", None),
            ("gen", GEN_CASES, "orig", None),
        ):
            res = {
                c: _run_child(kind, c, rf, common)
                for c in cases
                if not wanted or f"{kind}:{c}" in wanted
            }
            report[f"{kind}_{rf}"] = res
            if base in res:
                lines += _table(kind, rf, res, base, second)
                print("\n".join(lines[-len(res) - 1 :]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
