"""Training loop of VideoPose3D (docs/formats/videopose3d.md, "Training defaults"), preemption-safe.

Same recipe as the original: one-frame chunks through the strided model, flip
augmentation, Adam with amsgrad, lr x0.95 per epoch, BN momentum decaying 0.1 -> 0.001,
optional semi-supervised back-projection. What vidmine adds:

* a resume file rewritten atomically after every epoch, so a killed or preempted job
  continues from its last finished epoch when rerun with the same arguments;
* the final model is written once, at the very end, so a Snakemake output never exists
  half-trained;
* per-epoch seeding (shuffle order, dropout), so a resumed run repeats the uninterrupted
  one exactly on CPU;
* CUDA when present; mixed precision where the hardware has it natively (CUDA, and CPUs
  with bf16 instructions); ``torch.compile`` on request.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidmine.lifter.camera import project_to_2d, project_to_2d_linear
from vidmine.lifter.checkpoint import (
    FORMAT_VERSION,
    atomic_save,
    load_checkpoint,
    run_py_entries,
)
from vidmine.lifter.config import DataConfig, TrainConfig, subject_split
from vidmine.lifter.data import PoseDataset
from vidmine.lifter.evaluate import evaluate
from vidmine.lifter.generators import Batch, ChunkSampler
from vidmine.lifter.metrics import mpjpe_loss, weighted_mpjpe_loss
from vidmine.lifter.model import TemporalModel, TemporalModelOptimized1f, count_parameters
from vidmine.lifter.skeleton import H36M_PARENTS, reprojection_pairs

log = logging.getLogger(__name__)

# Settings that may change between a killed run and its rerun without invalidating it.
_RUNTIME_ONLY = ("device", "threads", "eval_every", "compile", "amp")
EpochCallback = Callable[[int, dict], None]


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when a GPU is visible, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX, where bf16 matrix products beat fp32 (elsewhere they are emulated)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def amp_dtype_for(device: torch.device) -> torch.dtype | None:
    """The autocast dtype that speeds training up on ``device``, or None for plain fp32.

    CUDA: bf16 where supported, else fp16 (with loss scaling). CPU: bf16 on processors with
    AVX512-BF16 or AMX, where the strided model's matrix products run about 4x faster than in
    fp32 (docs/lifter.md has the measured speed and accuracy). Weights, optimiser state,
    BatchNorm and losses stay fp32 either way.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def bn_momentum(epoch: int, epochs: int, start: float = 0.1, end: float = 0.001) -> float:
    """The original's exponential BN-momentum schedule, start at epoch 0, end at the last."""
    return start * math.exp(-epoch / epochs * math.log(start / end))


@dataclass
class _Nets:
    pos_train: TemporalModelOptimized1f
    pos_eval: TemporalModel
    traj_train: TemporalModelOptimized1f | None = None
    traj_eval: TemporalModel | None = None
    params: list = field(default_factory=list)


def _build_nets(cfg: TrainConfig, joints_in: int, device: torch.device) -> _Nets:
    def pair(joints_out: int) -> tuple[TemporalModelOptimized1f, TemporalModel]:
        kw = dict(causal=cfg.causal, dropout=cfg.dropout, channels=cfg.channels)
        args = (joints_in, 2, joints_out, cfg.filter_widths)
        return (
            TemporalModelOptimized1f(*args, **kw).to(device),
            TemporalModel(*args, **kw).to(device),
        )

    nets = _Nets(*pair(17))
    if cfg.semi_supervised:
        nets.traj_train, nets.traj_eval = pair(1)
    nets.params = [p for m in (nets.pos_train, nets.traj_train) if m for p in m.parameters()]
    return nets


def fingerprint(train_cfg: TrainConfig, data_cfg: DataConfig) -> dict:
    """What must match for a resume file to be reused."""
    t = {k: v for k, v in train_cfg.to_dict().items() if k not in _RUNTIME_ONLY}
    return {"train": t, "data": data_cfg.to_dict()}


class Trainer:
    """Owns models, optimizer and samplers for one training run."""

    def __init__(
        self,
        train_cfg: TrainConfig,
        data_cfg: DataConfig,
        dataset: PoseDataset,
        out: Path,
        resume: Path | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> None:
        self.cfg, self.data_cfg, self.dataset = train_cfg, data_cfg, dataset
        self.out, self.resume_path, self.on_epoch_end = Path(out), resume, on_epoch_end
        if train_cfg.threads:
            torch.set_num_threads(train_cfg.threads)
        self.device = select_device(train_cfg.device)
        torch.manual_seed(train_cfg.seed)
        self.nets = _build_nets(train_cfg, dataset.input_layout.num_joints, self.device)
        self.optimizer = torch.optim.Adam(self.nets.params, lr=train_cfg.lr, amsgrad=True)
        self._setup_precision()
        self.history: list[dict] = []
        self.start_epoch = 0
        self._make_samplers()
        self._pos_step = self._maybe_compile(self.nets.pos_train)
        traj = self.nets.traj_train
        self._traj_step = self._maybe_compile(traj) if traj is not None else None

    def _setup_precision(self) -> None:
        """Mixed precision where the hardware has it natively (see :func:`amp_dtype_for`)."""
        self.amp_dtype = amp_dtype_for(self.device) if self.cfg.amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick kernels once

    def _maybe_compile(self, module: torch.nn.Module) -> Callable:
        return torch.compile(module) if self.cfg.compile == "on" else module

    def _make_samplers(self) -> None:
        model = self.nets.pos_train
        pad, shift = (model.receptive_field() - 1) // 2, model.total_causal_shift()
        kw = dict(pad=pad, causal_shift=shift, device=self.device)
        layout = self.dataset.input_layout
        split = subject_split(self.data_cfg)
        train = self.dataset.select(split["train"])
        self.sampler = ChunkSampler(train, layout, augment=self.cfg.augment, **kw)
        self.test_seqs = self.dataset.select(split["test"])
        self.unlabeled = None
        if self.cfg.semi_supervised:
            if not split["unlabeled"]:
                raise ValueError("semi-supervised training needs subjects_unlabeled")
            seqs = self.dataset.select(split["unlabeled"])
            self.unlabeled = ChunkSampler(seqs, layout, augment=self.cfg.augment, **kw)
            self.pairs = tuple(torch.from_numpy(p) for p in reprojection_pairs(layout.name))

    # ----------------------------------------------------------------- resume / output
    @property
    def precision(self) -> str:
        """'bfloat16', 'float16' or 'float32': what the training steps compute in."""
        return str(self.amp_dtype or torch.float32).removeprefix("torch.")

    def _meta(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "arch": {
                "num_joints_in": self.dataset.input_layout.num_joints,
                "in_features": 2,
                "num_joints_out": 17,
                "filter_widths": list(self.cfg.filter_widths),
                "channels": self.cfg.channels,
            },
            "causal": self.cfg.causal,
            "input_layout": self.dataset.input_layout.name,
            "fingerprint": fingerprint(self.cfg, self.data_cfg),
            "precision": self.precision,
            "history": [_without_timings(row) for row in self.history],
        }

    def _state(self, epochs_done: int, with_optimizer: bool) -> dict:
        traj = self.nets.traj_train
        state = run_py_entries(
            epochs_done,
            self.cfg.lr * self.cfg.lr_decay**epochs_done,  # run.py's: the next epoch's rate
            self.nets.pos_train.state_dict(),
            traj.state_dict() if traj is not None else None,
        )
        state["vidmine"] = self._meta()
        if with_optimizer:
            state["vidmine_optimizer"] = self.optimizer.state_dict()
            state["vidmine_scaler"] = self.scaler.state_dict()
        return state

    def try_resume(self) -> int:
        """Load the resume file if it belongs to this run; returns the epochs already done."""
        path = self.resume_path
        if path is None or not Path(path).exists():
            return 0
        ckpt = load_checkpoint(path)
        if ckpt.get("vidmine", {}).get("fingerprint") != fingerprint(self.cfg, self.data_cfg):
            log.warning("ignoring resume file %s: it was written with other settings", path)
            return 0
        self.nets.pos_train.load_state_dict(ckpt["model_pos"])
        if self.nets.traj_train is not None:
            self.nets.traj_train.load_state_dict(ckpt["model_traj"])
        prefix = "vidmine_" if "vidmine_optimizer" in ckpt else ""  # format 1 used run.py's key
        self.optimizer.load_state_dict(ckpt[f"{prefix}optimizer"])
        self.scaler.load_state_dict(ckpt[f"{prefix}scaler"])
        self.history = list(ckpt["vidmine"]["history"])
        self.start_epoch = int(ckpt["epoch"])
        log.info("resumed from %s after epoch %d/%d", path, self.start_epoch, self.cfg.epochs)
        return self.start_epoch

    # ----------------------------------------------------------------- training
    def _loss_supervised(self, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
        target = batch.target_3d.clone()
        target[:, :, 0] = 0
        return mpjpe_loss(pred.float(), target)

    def _loss_traj(self, pred_traj: torch.Tensor, batch: Batch) -> torch.Tensor:
        traj = batch.target_3d[:, :, :1]
        return weighted_mpjpe_loss(pred_traj.float(), traj, 1 / traj[..., 2])

    def _loss_reprojection(self, pred: torch.Tensor, traj: torch.Tensor, ub: Batch):
        project = project_to_2d_linear if self.cfg.linear_projection else project_to_2d
        reproj = project(pred.float() + traj.float(), ub.intrinsics)
        idx_2d, idx_3d = self.pairs
        return mpjpe_loss(reproj[:, :, idx_3d], ub.target_2d[:, :, idx_2d])

    @staticmethod
    def _bone_term(pred_l: torch.Tensor, pred_u: torch.Tensor) -> torch.Tensor:
        """Mean bone lengths of labelled and unlabelled predictions should agree."""
        parents = list(H36M_PARENTS[1:])

        def mean_bones(p: torch.Tensor) -> torch.Tensor:
            bones = torch.linalg.vector_norm(p[:, :, 1:] - p[:, :, parents], dim=-1)
            return bones.mean(dim=(0, 1))

        return torch.mean(torch.abs(mean_bones(pred_l.float()) - mean_bones(pred_u.float())))

    def _step(self, batch: Batch, ub: Batch | None) -> dict[str, torch.Tensor]:
        """One optimiser step; ``ub`` is the unlabelled batch (after warm-up) or None.

        Returns the detached losses as tensors: turning them into floats here would make
        the host wait for the GPU after every step.
        """
        inputs = batch.inputs_2d if ub is None else torch.cat([batch.inputs_2d, ub.inputs_2d])
        n = len(batch.inputs_2d)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            pred = self._pos_step(inputs)
            traj = self._traj_step(inputs) if self._traj_step is not None else None
        losses = {"pose": self._loss_supervised(pred[:n], batch)}
        if traj is not None:
            losses["traj"] = self._loss_traj(traj[:n], batch)
        if ub is not None:
            losses["reproj"] = self._loss_reprojection(pred[n:], traj[n:], ub)
            if self.cfg.bone_length_term:
                losses["bone"] = self._bone_term(pred[:n], pred[n:])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(sum(losses.values())).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach() for k, v in losses.items()}

    def _begin_epoch(self, epoch: int) -> dict:
        """Seed, learning rate and BN momentum of ``epoch`` (0-based), from scratch.

        Everything is derived from (seed, epoch) so that a resumed run repeats exactly.
        """
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        lr = cfg.lr * cfg.lr_decay**epoch
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        momentum = bn_momentum(epoch, cfg.epochs)
        for net in (self.nets.pos_train, self.nets.traj_train):
            if net is not None:
                net.set_bn_momentum(momentum)
                net.train()
        return {"epoch": epoch + 1, "lr": lr, "bn_momentum": momentum}

    def _unlabelled_stream(self, epoch: int):
        if self.unlabeled is None or epoch < self.cfg.warmup:
            return None
        rng = np.random.default_rng([self.cfg.seed, epoch, 1])
        return self.unlabeled.endless(self.cfg.batch_size, rng)

    def _train_epoch(self, epoch: int) -> dict:
        row = self._begin_epoch(epoch)
        bs = self.cfg.batch_size
        batches = self.sampler.epoch(bs, np.random.default_rng([self.cfg.seed, epoch]))
        unl = self._unlabelled_stream(epoch)
        sums: dict[str, torch.Tensor] = {}
        t0 = time.perf_counter()
        total = self.sampler.num_batches(bs)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}", total=total, leave=False, disable=None)
        for batch in bar:
            for k, v in self._step(batch, next(unl) if unl else None).items():
                sums[k] = sums.get(k, 0.0) + v * len(batch.inputs_2d)
        means = {k: float(v) / len(self.sampler) for k, v in sums.items()}  # waits for the GPU
        row["seconds"] = time.perf_counter() - t0
        row["frames_per_s"] = self.sampler.frames / max(row["seconds"], 1e-9)
        row["train_mpjpe_mm"] = means.pop("pose") * 1000
        row.update({f"train_{k}": v for k, v in means.items()})
        return row

    def _maybe_test(self, row: dict) -> None:
        every = self.cfg.eval_every
        if (
            not self.test_seqs
            or not every
            or (row["epoch"] % every and row["epoch"] != self.cfg.epochs)
        ):
            return
        self.nets.pos_eval.load_state_dict(self.nets.pos_train.state_dict())
        layout = self.dataset.input_layout
        res = evaluate(self.nets.pos_eval, self.test_seqs, layout, self.cfg.tta, self.device)
        row["test_mpjpe_mm"] = res["overall"]["mpjpe"]
        row["test_p_mpjpe_mm"] = res["overall"]["p_mpjpe"]

    def run(self) -> dict:
        """Train the remaining epochs, checkpointing each; write the final model; return it."""
        cfg = self.cfg
        log.info(
            "training %s-frame lifter (%d params) on %s, %d train frames/epoch, %s on %s",
            self.nets.pos_train.receptive_field(),
            count_parameters(self.nets.pos_train),
            self.dataset.name,
            self.sampler.frames,
            self.precision,
            self.device,
        )
        start = self.try_resume()
        bar = tqdm(
            range(start, cfg.epochs), initial=start, total=cfg.epochs, desc="lifter", disable=None
        )
        for epoch in bar:
            row = self._train_epoch(epoch)
            self._maybe_test(row)
            self.history.append(row)
            if self.resume_path is not None:
                atomic_save(self._state(epoch + 1, with_optimizer=True), self.resume_path)
            log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, _fmt(row))
            if self.on_epoch_end:
                self.on_epoch_end(epoch + 1, row)
        final = self._state(cfg.epochs, with_optimizer=False)
        atomic_save(final, self.out)
        if self.resume_path is not None:
            Path(self.resume_path).unlink(missing_ok=True)
        log.info("wrote %s", self.out)
        return final


# Measured per epoch and logged, but kept out of the files: they differ between two identical
# runs, and the model file is meant to be byte-identical.
TIMING_KEYS = frozenset({"seconds", "frames_per_s"})


def _without_timings(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


def _fmt(row: dict) -> str:
    skip = {"epoch"}
    return " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in skip)


def train(
    train_cfg: TrainConfig,
    data_cfg: DataConfig,
    out: Path,
    resume: Path | None = None,
    dataset: PoseDataset | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict:
    """Train a lifter and write it to ``out``; ``resume`` is the per-epoch checkpoint."""
    from vidmine.lifter.config import load_dataset

    ds = dataset if dataset is not None else load_dataset(data_cfg)
    return Trainer(train_cfg, data_cfg, ds, out, resume, on_epoch_end).run()


def configure_logging(level: int = logging.INFO) -> None:
    """Plain timestamped lines on stderr (Snakemake redirects them into the rule's log)."""
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
