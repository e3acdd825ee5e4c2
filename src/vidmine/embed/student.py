"""VPD's student: a ResNet that maps a person crop (RGB, plus optical flow) to the teacher's
pose embedding, distilled on the dataset's own tracks (train_vpd_model.py, models/rgb.py,
apply_vpd_model.py; docs/formats/vpd.md).

What VPD does, and so does this:

* the network is a torchvision ResNet (``resnet34`` by default) whose last layer outputs the
  teacher's embedding width; with flow its first convolution takes 5 channels, each new
  kernel the mean of the RGB kernels, so ImageNet weights still make sense on the flow;
* the loss is the squared error summed over the batch and the embedding (reported per
  sample), optimised with AdamW at 5e-4, batches of 100, mixed precision on CUDA;
* ``motion`` adds a small head (D -> 128 -> 128 -> 2D) that learns [e, e - e_prev] from the
  encoder's output during training; the features written are the encoder's;
* applied, every crop of a track gives ``(2, D)``: the crop and its mirror (flow mirrored and
  dx negated), meta ``{}``, one ``<video>.emb.pkl`` per track.

What vidmine adds: the RGB statistics are measured on the training crops (VPD's constants
belong to its own datasets), whole tracks are held out (VPD splits frames at random, so its
validation frames have neighbours in training), the held-out agreement with the teacher is
reported next to a baseline that always answers the mean teacher embedding, and a resume file
is written atomically after every epoch so a preempted job continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from vidmine.embed.student_data import (
    CROP_PATTERN,
    IMAGENET_MEAN_STD,
    MIN_POSE_SCORE,
    StudentDataset,
    StudentFrame,
    dataset_mean_std,
    find_crop_dirs,
    flip_input,
    holdout_videos,
    load_frames,
    plain_input,
)
from vidmine.formats import FormatError
from vidmine.formats.vpd import VpdFeature, features_path, write_vpd_features
from vidmine.io import write_text_atomic
from vidmine.lifter.checkpoint import atomic_save
from vidmine.lifter.train import select_device
from vidmine.weights import WeightsError, WeightSource, refused_pickle_reason, resolve_weights

log = logging.getLogger(__name__)

FORMAT = "vidmine-vpd-student/1"
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "wide_resnet50_2", "wide_resnet101_2")
# Settings that may change between a killed run and its rerun without invalidating it.
_RUNTIME_ONLY = ("device", "threads", "workers", "amp")
EpochCallback = Callable[[int, dict], None]


@dataclass(frozen=True)
class StudentConfig:
    """Defaults are train_vpd_model.py's, except ``epochs`` (VPD's 1000 epochs of 20000
    samples run for days) and the held-out tracks, which VPD does not have."""

    arch: str = "resnet34"
    img_dim: int = 128
    flow_name: str | None = "flow"  # the <frame>.<name>.png flow PNGs; None: RGB only
    motion: bool = False
    pretrained: bool = False  # ImageNet weights through vidmine.weights (and ImageNet stats)
    pretrained_weights: str = "official"  # or a path / URL of a torchvision state dict
    epochs: int = 50
    samples_per_epoch: int = 20000  # VPD's target_len
    batch_size: int = 100
    lr: float = 5e-4
    min_pose_score: float = MIN_POSE_SCORE
    holdout_fraction: float = 0.2
    eval_every: int = 1  # epochs between held-out evaluations (0: the last epoch only)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # CUDA only, as VPD
    workers: int = 0
    threads: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StudentConfig:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def demo_config(**overrides: Any) -> StudentConfig:
    """A student that trains in seconds on two cores: 64-pixel crops, resnet18, few samples."""
    settings = dict(arch="resnet18", img_dim=64, epochs=2, samples_per_epoch=64, batch_size=16)
    return StudentConfig(**{**settings, **overrides})


# ------------------------------------------------------------------ model


class StudentModel(nn.Module):
    """VPD's RGBF_EmbeddingModel for ResNets: the backbone is the attribute ``resnet``, so its
    state dict has VPD's key names (``resnet.conv1.weight``, ..., ``resnet.fc.bias``)."""

    def __init__(self, arch: str, emb_dim: int, use_flow: bool) -> None:
        super().__init__()
        import torchvision.models as models

        if arch not in ARCHS:
            raise ValueError(f"student arch {arch!r}: one of {', '.join(ARCHS)}")
        self.arch, self.emb_dim, self.use_flow = arch, int(emb_dim), bool(use_flow)
        self.resnet = getattr(models, arch)(weights=None)
        self.resnet.fc = nn.Linear(self.resnet.fc.in_features, self.emb_dim)

    @property
    def in_channels(self) -> int:
        return 5 if self.use_flow else 3

    def widen_for_flow(self) -> None:
        """Give the first convolution 5 input channels, each kernel the mean of the RGB ones
        (VPD's ``add_flow_to_model``; called after any pretrained weights are in)."""
        if not self.use_flow or self.resnet.conv1.in_channels == 5:
            return
        old = self.resnet.conv1
        new = nn.Conv2d(5, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        new.weight.data = old.weight.data.mean(dim=1, keepdim=True).expand(-1, 5, -1, -1).clone()
        self.resnet.conv1 = new

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.resnet(images)


def motion_head(emb_dim: int) -> nn.Module:
    """VPD's FCNet(D, [128, 128], 2D, dropout=0): [e, e - e_prev] from the encoder's e."""
    return nn.Sequential(
        nn.Linear(emb_dim, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, 2 * emb_dim),
    )


def weight_sources(cfg: StudentConfig) -> list[WeightSource]:
    """The weights file a pretrained student loads (for ``vidmine fetch-weights``, which
    fills the cache on a host with network); none for a student trained from scratch."""
    if not cfg.pretrained:
        return []
    import torchvision.models as models

    from vidmine.weights import sha256_from_file_name, torchvision_weights_url

    enum = models.get_model_weights(cfg.arch)
    # VPD's ``pretrained=True`` is torchvision's first ImageNet weights of each ResNet
    official = cfg.pretrained_weights == "official"
    name = "IMAGENET1K_V1" if official else cfg.pretrained_weights
    source = torchvision_weights_url(enum, name)
    return [WeightSource(f"VPD student {cfg.arch} ImageNet", source, sha256_from_file_name(source))]


def imagenet_state(arch: str, weights: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights of ``arch`` from vidmine's weights cache (checked by the
    SHA-256 prefix in the official file name); a one-line error says how to get them."""
    from vidmine.weights import load_state_dict

    cfg = StudentConfig(arch=arch, pretrained=True, pretrained_weights=weights)
    (source,) = weight_sources(cfg)
    try:
        path = resolve_weights(source.source, source.sha256)
    except WeightsError as exc:
        raise WeightsError(f"student {arch} ImageNet weights: {exc}") from None
    return load_state_dict(path)


def build_model(cfg: StudentConfig, emb_dim: int) -> StudentModel:
    model = StudentModel(cfg.arch, emb_dim, cfg.flow_name is not None)
    if cfg.pretrained:
        state = imagenet_state(cfg.arch, cfg.pretrained_weights)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.resnet.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise WeightsError(
                f"student {cfg.arch}: {cfg.pretrained_weights} is not a torchvision {cfg.arch} "
                f"state dict ({len(missing)} missing, {len(unexpected)} unexpected keys)"
            )
    model.widen_for_flow()
    return model


# ------------------------------------------------------------------ checkpoints


def load_student_checkpoint(path: str | os.PathLike) -> dict:
    """A student checkpoint on CPU through torch's weights-only unpickler: a file naming any
    code is refused in one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such student checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FormatError(f"{path}: refused: {refused_pickle_reason(exc)}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else "the file is empty or cut short"
        raise FormatError(f"{path}: not a readable torch checkpoint: {reason}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FormatError(f"{path}: not a vidmine VPD student checkpoint ({FORMAT})")
    return ckpt


@dataclass
class LoadedStudent:
    """A trained student ready to embed crops: the network and how its inputs are built."""

    model: StudentModel
    img_dim: int
    mean_std: tuple
    flow_name: str | None
    meta: dict


def load_student(path: str | os.PathLike, device: str = "auto") -> LoadedStudent:
    """Open a checkpoint written by :func:`train_student` (final or resume file)."""
    ckpt = load_student_checkpoint(path)
    cfg = StudentConfig.from_dict(ckpt["config"])
    model = StudentModel(cfg.arch, ckpt["emb_dim"], cfg.flow_name is not None)
    model.widen_for_flow()
    try:
        model.load_state_dict(ckpt["encoder"])
    except RuntimeError as exc:
        raise FormatError(f"{path}: encoder weights do not fit {cfg.arch}: {exc}") from None
    model = model.to(select_device(device)).eval()
    mean_std = tuple(tuple(v) for v in ckpt["rgb_mean_std"])
    return LoadedStudent(model, cfg.img_dim, mean_std, cfg.flow_name, ckpt)


# ------------------------------------------------------------------ agreement


def agreement(pred: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Mean cosine similarity and mean L2 distance of matching rows."""
    cos = np.sum(pred * teacher, axis=1) / (
        np.linalg.norm(pred, axis=1) * np.linalg.norm(teacher, axis=1) + 1e-12
    )
    return {
        "cosine": float(np.mean(cos)),
        "l2": float(np.mean(np.linalg.norm(pred - teacher, axis=1))),
    }


def _rows(frames: Sequence[StudentFrame]) -> tuple[np.ndarray, np.ndarray]:
    """Every (frame, flip) pair's teacher row, and whether it is the flipped one."""
    targets, flips = [], []
    for f in frames:
        for flip in (False, True) if f.target.ndim == 2 else (False,):
            targets.append(f.target[int(flip)])
            flips.append(flip)
    return np.stack(targets), np.array(flips)


# ------------------------------------------------------------------ training


def fingerprint(cfg: StudentConfig, frames: Sequence[StudentFrame]) -> dict:
    """What must match for a resume file to be reused: the settings and the data's extent."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_ONLY}
    return {"config": settings, "frames": len(frames), "videos": sorted({f.video for f in frames})}


class StudentTrainer:
    """Owns the networks, optimizer and data of one distillation run."""

    def __init__(
        self,
        cfg: StudentConfig,
        frames: Sequence[StudentFrame],
        out: Path,
        resume: Path | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.resume_path, self.on_epoch_end = resume, on_epoch_end
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = select_device(cfg.device)
        held = holdout_videos([f.video for f in frames], cfg.holdout_fraction)
        self.train_frames = [f for f in frames if f.video not in held]
        self.test_frames = [f for f in frames if f.video in held]
        self.fingerprint = fingerprint(cfg, frames)
        self.emb_dim = int(frames[0].target.shape[-1]) // (2 if cfg.motion else 1)
        self.mean_std = (
            IMAGENET_MEAN_STD
            if cfg.pretrained
            else dataset_mean_std(self.train_frames, cfg.img_dim)
        )
        torch.manual_seed(cfg.seed)
        self.encoder = build_model(cfg, self.emb_dim).to(self.device)
        self.head = motion_head(self.emb_dim).to(self.device) if cfg.motion else None
        params = [*self.encoder.parameters(), *(self.head.parameters() if self.head else ())]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr)
        use_amp = cfg.amp and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick kernels once
        self.data = StudentDataset(self.train_frames, cfg.img_dim, self.mean_std, cfg.flow_name)
        self.history: list[dict] = []

    # ------------------------------------------------------------- resume / output
    def _state(self, epochs_done: int, with_optimizer: bool) -> dict:
        state = {
            "format": FORMAT,
            "epoch": epochs_done,
            "config": self.cfg.to_dict(),
            "emb_dim": self.emb_dim,
            "rgb_mean_std": [list(v) for v in self.mean_std],
            "encoder": self.encoder.state_dict(),
            "motion_head": self.head.state_dict() if self.head is not None else None,
            "fingerprint": self.fingerprint,
            "holdout_videos": sorted({f.video for f in self.test_frames}),
            "history": [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in self.history],
        }
        if with_optimizer:
            state["optimizer"] = self.optimizer.state_dict()
            state["scaler"] = self.scaler.state_dict()
        return state

    def try_resume(self) -> int:
        """Load the resume file if it belongs to this run; returns the epochs already done."""
        if self.resume_path is None or not Path(self.resume_path).exists():
            return 0
        ckpt = load_student_checkpoint(self.resume_path)
        if ckpt.get("fingerprint") != self.fingerprint or "optimizer" not in ckpt:
            log.warning("ignoring resume file %s: written with other settings", self.resume_path)
            return 0
        self.encoder.load_state_dict(ckpt["encoder"])
        if self.head is not None:
            self.head.load_state_dict(ckpt["motion_head"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.history = list(ckpt["history"])
        log.info("resumed from %s after epoch %d", self.resume_path, ckpt["epoch"])
        return int(ckpt["epoch"])

    # ------------------------------------------------------------- steps
    def _predict(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            emb = self.encoder(images)
            return (self.head(emb) if self.head is not None else emb).float()

    def _step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images = batch["img"].to(self.device, non_blocking=True)
        target = batch["emb"].to(self.device, non_blocking=True)
        loss = F.mse_loss(self._predict(images), target, reduction="sum")  # VPD's: a sum
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def _loader(self, dataset: torch.utils.data.Dataset) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset,
            self.cfg.batch_size,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
        )

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of ``samples_per_epoch`` augmented samples, everything drawn from
        (seed, epoch) so that a resumed run repeats the uninterrupted one."""
        torch.manual_seed(self.cfg.seed * 100_003 + epoch)
        self.data.set_epoch(self.cfg.seed, epoch, self.cfg.samples_per_epoch)
        self.encoder.train()
        if self.head is not None:
            self.head.train()
        total = torch.zeros((), device=self.device)
        t0 = time.perf_counter()
        bar = tqdm(
            self._loader(self.data), desc=f"student epoch {epoch + 1}", leave=False, disable=None
        )
        for batch in bar:
            total += self._step(batch)
        seconds = time.perf_counter() - t0
        return {
            "epoch": epoch + 1,
            "train_loss": float(total) / len(self.data),
            "seconds": seconds,
            "crops_per_s": len(self.data) / max(seconds, 1e-9),
        }

    @torch.no_grad()
    def embed(self, frames: Sequence[StudentFrame]) -> np.ndarray:
        """The encoder's (or, with motion, the head's) output for every (frame, flip) row, in
        the order of :func:`_rows`: what the teacher's rows are compared with."""
        self.encoder.eval()
        if self.head is not None:
            self.head.eval()
        out = []
        for start in range(0, len(frames), self.cfg.batch_size):
            images = []
            for f in frames[start : start + self.cfg.batch_size]:
                image = self.data.input_of(f, flip=False)
                images.append(image)
                if f.target.ndim == 2:
                    images.append(flip_input(image))
            out.append(self._predict(torch.stack(images).to(self.device)).cpu().numpy())
        return np.concatenate(out)

    def evaluate(self) -> dict:
        """Student-teacher agreement on the held-out tracks, and the same for the baseline
        that always answers the training set's mean teacher row (per flip side)."""
        if not self.test_frames:
            return {}
        teacher, flips = _rows(self.test_frames)
        train_rows, train_flips = _rows(self.train_frames)
        mean = np.stack([train_rows[train_flips == f].mean(axis=0) for f in flips])
        pred = self.embed(self.test_frames)
        student, baseline = agreement(pred, teacher), agreement(mean, teacher)
        return {
            "test_frames": len(self.test_frames),
            "test_loss": float(np.sum((pred - teacher) ** 2) / len(teacher)),
            **{f"test_{k}": v for k, v in student.items()},
            **{f"baseline_mean_{k}": v for k, v in baseline.items()},
        }

    def run(self) -> dict:
        """Train the remaining epochs, checkpointing each; write the final model; return its
        metrics (the last epoch's row)."""
        cfg = self.cfg
        log.info(
            "student %s on %d train / %d held-out frames (%s), %s",
            cfg.arch,
            len(self.train_frames),
            len(self.test_frames),
            "RGB + flow" if cfg.flow_name else "RGB",
            self.device,
        )
        start = self.try_resume()
        for epoch in tqdm(
            range(start, cfg.epochs), initial=start, total=cfg.epochs, desc="student", disable=None
        ):
            row = self.train_epoch(epoch)
            every = cfg.eval_every
            if epoch + 1 == cfg.epochs or (every and (epoch + 1) % every == 0):
                row.update(self.evaluate())
            self.history.append(row)
            if self.resume_path is not None:
                atomic_save(self._state(epoch + 1, with_optimizer=True), Path(self.resume_path))
            log.info("student epoch %d/%d %s", epoch + 1, cfg.epochs, row)
            if self.on_epoch_end:
                self.on_epoch_end(epoch + 1, row)
        atomic_save(self._state(cfg.epochs, with_optimizer=False), self.out)
        if self.resume_path is not None:
            Path(self.resume_path).unlink(missing_ok=True)
        return dict(self.history[-1]) if self.history else {}


# Measured per epoch and logged, kept out of the files (they differ between identical runs).
TIMING_KEYS = frozenset({"seconds", "crops_per_s"})


def train_student(
    config: StudentConfig,
    crops_dirs: Sequence[str | os.PathLike],
    teacher_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    resume_path: str | os.PathLike | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict:
    """Distil the teacher's features in ``teacher_dir`` into a student of the crops under
    ``crops_dirs`` (export folders ``crops/``, one subfolder per track); write the model to
    ``out_path``; return the last epoch's metrics (losses, held-out agreement, baseline)."""
    frames = load_frames(
        teacher_dir, crops_dirs, config.min_pose_score, config.motion, config.flow_name
    )
    resume = Path(resume_path) if resume_path is not None else None
    return StudentTrainer(config, frames, Path(out_path), resume, on_epoch_end).run()


# ------------------------------------------------------------------ apply


def crop_frames(crop_dir: str | os.PathLike) -> list[int]:
    """The frames of a crop folder: its ``<frame>.png`` files, as apply_vpd_model.py finds them."""
    return sorted(
        int(m[1]) for m in (CROP_PATTERN.match(p.name) for p in Path(crop_dir).iterdir()) if m
    )


def apply_student_to_tracks(
    model: LoadedStudent, crops_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike
) -> list[Path]:
    """:func:`apply_student` on every track folder of the crops roots (every released track),
    one ``<track>.emb.pkl`` each in ``out_dir``."""
    folders = find_crop_dirs(crops_dirs)
    return [
        apply_student(model, folder, out_dir, video)
        for video, folder in tqdm(sorted(folders.items()), desc="student tracks", disable=None)
    ]


@torch.no_grad()
def apply_student(
    model: LoadedStudent,
    crop_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    video: str,
    flip: bool = True,
    batch_size: int = 250,
) -> Path:
    """Embed every crop of one track and write ``<out_dir>/<video>.emb.pkl``: per frame
    ``(2, D)`` (the crop, then its mirror with dx negated), or ``(D,)`` without ``flip``;
    meta ``{}`` as apply_vpd_model.py writes it."""
    crop_dir = Path(crop_dir)
    frames = crop_frames(crop_dir)
    if not frames:
        raise FormatError(f"{crop_dir}: no <frame>.png crops for {video}")
    net, device = model.model.eval(), next(model.model.parameters()).device
    features: list[VpdFeature] = []
    for start in tqdm(
        range(0, len(frames), batch_size), desc=f"student {video}", leave=False, disable=None
    ):
        chunk = frames[start : start + batch_size]
        images = []
        for frame in chunk:
            image = plain_input(crop_dir, frame, model.img_dim, model.mean_std, model.flow_name)
            images.extend([image, flip_input(image)] if flip else [image])
        emb = net(torch.stack(images).to(device)).float().cpu().numpy()
        emb = emb.reshape(len(chunk), 2, -1) if flip else emb
        features.extend(VpdFeature(f, e, {}) for f, e in zip(chunk, emb, strict=True))
    path = features_path(out_dir, video)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_vpd_features(path, features)
    return path


def export_vpd_model(checkpoint: str | os.PathLike, model_dir: str | os.PathLike) -> Path:
    """A trained student as the model folder VPD's ``apply_vpd_model.py`` opens: its
    ``config.json`` (the keys that script reads) and ``best_epoch.encoder.pt`` (the encoder's
    state dict, whose names are VPD's ``RGBF_EmbeddingModel``'s)."""
    ckpt = load_student_checkpoint(checkpoint)
    cfg = StudentConfig.from_dict(ckpt["config"])
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "num_epochs": ckpt["epoch"],
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.lr,
        "img_dim": cfg.img_dim,
        "use_flow": cfg.flow_name is not None,
        "motion": cfg.motion,
        "embed_time": cfg.motion,  # apply_vpd_model.py reads this name, train_vpd_model.py
        "emb_dim": ckpt["emb_dim"],  # writes "motion"
        "encoder_arch": cfg.arch,
        "rgb_mean_std": ckpt["rgb_mean_std"],
    }
    atomic_save(ckpt["encoder"], folder / "best_epoch.encoder.pt")
    write_text_atomic(folder / "config.json", json.dumps(settings, indent=2) + "\n")
    return folder
