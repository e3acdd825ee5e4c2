"""The VIPE* teacher: VPD's 2D-pose embedding (``train_vipe_model.py``, ``models/module.py``,
``models/keypoint.py``, ``apply_vipe_model.py``), trained, loaded and applied by vidmine.

VIPE* maps one normalised 2D pose to a 32-float embedding that should not depend on the camera:
two views of one 3D pose are pulled together (hinge loss on their distance), a pose that
differs in 3D is pushed at least a distance 1 away, and a small decoder must recover the 3D
pose's bone directions from the embedding, so that the embedding keeps the 3D shape. The
examples come from :mod:`vidmine.embed.teacher_data`.

The encoder's parameter names are VPD's ``FCResNet``'s, so VPD's published ``best_epoch.encoder.pt``
loads into it unchanged (:func:`load_vpd_teacher`), and vidmine's own model files hold the same
state dict. Training follows the lifter's conventions: a resume file rewritten atomically after
every epoch, everything random seeded per (seed, epoch) so a resumed run repeats the
uninterrupted one, the model file written once at the end, CUDA when present with mixed
precision there only (VPD's GradScaler on CUDA).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from vidmine.embed.pose2d import BONES, KEPT_JOINTS, normalize_poses, raw_2d_features
from vidmine.embed.teacher_data import (
    TARGET_SHAPE,
    Examples,
    ExampleSampler,
    Sequence3d,
    held_out_cameras,
    retrieval_views,
    sequences_fingerprint,
    split_by_subject,
    synthetic_sequences,
)
from vidmine.formats import FormatError
from vidmine.formats.vpd import VpdFeature, features_path, read_vpd_keypoints, write_vpd_features
from vidmine.lifter.checkpoint import atomic_save
from vidmine.lifter.train import amp_dtype_for, select_device
from vidmine.weights import WeightsError, load_state_dict

log = logging.getLogger(__name__)

MODEL_FORMAT = "vidmine-vipe-teacher"
MODEL_VERSION = 1
EMBED_BATCH_SIZE = 250  # apply_vipe_model.py's
_RUNTIME_ONLY = ("device", "threads", "amp")  # may change between a killed run and its rerun


@dataclass(frozen=True)
class TeacherConfig:
    """VIPE*'s settings, VPD's defaults (``train_vipe_model.py``) unless noted.

    ``examples_per_epoch`` is VPD's Human3.6M epoch (20,000 drawn examples, 2,000 for
    validation); the demo shrinks it with ``hidden``, ``blocks`` and ``epochs``. The synthetic
    fields describe the data when ``train_teacher`` is not handed sequences.
    """

    embedding_dim: int = 32
    blocks: int = 2
    hidden: int = 1024
    dropout: float = 0.2
    decoder_blocks: int = 2
    decoder_hidden: int = 512
    embed_bones: bool = False
    lr: float = 1e-4
    batch_size: int = 100
    epochs: int = 500
    examples_per_epoch: int = 20_000
    val_examples: int = 2_000
    weight_3d: float = 1.0
    noise_px: float = 2.0
    seed: int = 0
    subjects_train: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
    subjects_test: tuple[str, ...] = ("S9", "S11")
    synthetic_frames: int = 110
    synthetic_sequences: int = 1
    synthetic_seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True  # used on CUDA only

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.examples_per_epoch < 2:
            raise ValueError("batch_size and examples_per_epoch must be >= 2 (BatchNorm trains)")
        if self.epochs < 0 or self.val_examples < 0 or self.val_examples == 1:
            raise ValueError("epochs must be >= 0, val_examples 0 (no validation) or >= 2")
        if min(self.embedding_dim, self.hidden, self.decoder_hidden) < 1 or self.blocks < 0:
            raise ValueError("embedding_dim, hidden and decoder_hidden must be >= 1, blocks >= 0")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> TeacherConfig:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        )

    @property
    def input_dim(self) -> int:
        """13 joints x (x, y, conf), or 25 rows with VPD's bone rows."""
        return (len(KEPT_JOINTS) + (len(BONES) if self.embed_bones else 0)) * 3


# --------------------------------------------------------------------- model
class FcResidualBlock(nn.Module):
    """VPD's residual block: two Linear-BN-ReLU-Dropout layers, output ``block(x) - x``
    (VPD subtracts the input; kept, so that its trained weights compute the same function)."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) - x


class FCResNet(nn.Module):
    """VPD's encoder: Linear + ReLU, ``blocks`` residual blocks, Linear to the embedding.

    Attribute names (``layers.0``, ``layers.2.block.1``, ...) are VPD's, so its state dicts load.
    """

    def __init__(
        self, in_dim: int, out_dim: int | None, blocks: int, hidden: int, dropout: float = 0.3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.ReLU()]
        layers += [FcResidualBlock(hidden, dropout) for _ in range(blocks)]
        if out_dim is not None:
            layers.append(nn.Linear(hidden, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PoseDecoder(nn.Module):
    """VPD's ``FCPoseDecoder`` with one target: an MLP from the embedding to the 3D features
    (``decoder_blocks`` layers of ``decoder_hidden``, ReLU between, no dropout)."""

    def __init__(self, emb_dim: int, blocks: int, hidden: int, target_dim: int) -> None:
        super().__init__()
        if blocks < 2:
            raise ValueError(f"the 3D decoder needs at least 2 layers, not {blocks}")
        layers: list[nn.Module] = [nn.Linear(emb_dim, hidden)]
        for _ in range(blocks - 1):
            layers += [nn.ReLU(), nn.Linear(hidden, hidden)]
        self.fcn = nn.Sequential(*layers)
        self.fc_out = nn.Linear(hidden, target_dim)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.relu(self.fcn(emb)))


@dataclass
class VipeTeacher:
    """A VIPE* encoder ready to embed poses, with how its input is normalised."""

    encoder: FCResNet
    embed_bones: bool
    device: torch.device
    meta: dict

    @property
    def embedding_dim(self) -> int:
        return int(self.encoder.layers[-1].out_features)

    def embed_normalized(self, poses: np.ndarray) -> np.ndarray:
        """(N, rows, 3) normalised poses -> (N, D) embeddings, in batches of 250."""
        self.encoder.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(poses), EMBED_BATCH_SIZE):
                x = torch.as_tensor(poses[i : i + EMBED_BATCH_SIZE], dtype=torch.float32)
                out.append(self.encoder(x.reshape(len(x), -1).to(self.device)).float().cpu())
        if not out:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return torch.cat(out).numpy()

    def embed(self, keypoints: np.ndarray, flip: bool = False) -> np.ndarray:
        """(N, 17, 3) COCO poses (pixels, confidences in [0, 1]) -> (N, D) embeddings."""
        if len(keypoints) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return self.embed_normalized(normalize_poses(keypoints, flip=flip, bones=self.embed_bones))


def build_networks(cfg: TeacherConfig) -> tuple[FCResNet, PoseDecoder]:
    """VPD's encoder and 3D decoder for ``cfg`` (encoder dropout 0.2, decoder none)."""
    encoder = FCResNet(cfg.input_dim, cfg.embedding_dim, cfg.blocks, cfg.hidden, cfg.dropout)
    decoder = PoseDecoder(
        cfg.embedding_dim, cfg.decoder_blocks, cfg.decoder_hidden, int(np.prod(TARGET_SHAPE))
    )
    return encoder, decoder


def vipe_loss(
    encoder: nn.Module, decoder: nn.Module, batch: dict[str, torch.Tensor], weight_3d: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """VPD's objective on one batch, as (total / n, contrastive / n).

    Positive pairs: hinge loss on their distance (the distance itself); negatives: max(0, 1 -
    distance), only where the negative passed the 3D test; both views decode the 3D target
    (summed squared error). Everything is summed and divided by the batch size, as VPD does.
    """
    n = len(batch["pose1"])
    emb1 = encoder(batch["pose1"].reshape(n, -1))
    emb2 = encoder(batch["pose2"].reshape(n, -1))
    emb_neg = encoder(batch["pose_neg"].reshape(n, -1))
    ones = torch.ones(n, device=emb1.device)
    contrast = F.hinge_embedding_loss(torch.norm(emb1 - emb2, dim=1), ones, reduction="sum")
    push = F.hinge_embedding_loss(torch.norm(emb1 - emb_neg, dim=1), -ones, reduction="none")
    contrast = contrast + torch.sum(push * batch["neg_valid"])
    target = batch["target_3d"].reshape(n, -1)
    decoded = F.mse_loss(decoder(emb1).float(), target, reduction="sum")
    decoded = decoded + F.mse_loss(decoder(emb2).float(), target, reduction="sum")
    return (contrast + weight_3d * decoded) / n, contrast.detach() / n


def _batches(examples: Examples, batch_size: int, device: torch.device, order: np.ndarray):
    """The examples as tensors on ``device``, in ``order``, ``batch_size`` at a time (a last
    batch of one is dropped: BatchNorm cannot train on it)."""
    arrays = {
        "pose1": examples.pose1,
        "pose2": examples.pose2,
        "pose_neg": examples.pose_neg,
        "neg_valid": examples.neg_valid,
        "target_3d": examples.target_3d,
    }
    tensors = {
        k: torch.as_tensor(v[order], dtype=torch.float32).to(device) for k, v in arrays.items()
    }
    for start in range(0, len(order), batch_size):
        if len(order) - start < 2:
            break
        yield {k: v[start : start + batch_size] for k, v in tensors.items()}


# --------------------------------------------------------------------- training
def fingerprint(cfg: TeacherConfig, data_hash: str) -> dict:
    """What must match for a resume file to be reused: the settings and the data."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_ONLY}
    return {"config": settings, "data": data_hash}


class TeacherTrainer:
    """Owns the networks, the optimiser and the example samplers of one training run."""

    def __init__(
        self,
        cfg: TeacherConfig,
        train_sequences: Sequence[Sequence3d],
        val_sequences: Sequence[Sequence3d],
    ) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = select_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.encoder, self.decoder = build_networks(cfg)
        self.encoder.to(self.device)
        self.decoder.to(self.device)
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr)
        self.amp_dtype = (
            amp_dtype_for(self.device) if cfg.amp and self.device.type == "cuda" else None
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.train_sampler = ExampleSampler(train_sequences, cfg.embed_bones, cfg.noise_px)
        self.val_sampler = (
            ExampleSampler(val_sequences, cfg.embed_bones, cfg.noise_px) if val_sequences else None
        )
        self.data_hash = sequences_fingerprint([*train_sequences, *val_sequences])
        self.history: list[dict] = []
        self._val_examples: Examples | None = None

    def state(self, epochs_done: int, with_optimizer: bool) -> dict:
        """A model file (or, with the optimiser, a resume file): plain tensors and values."""
        out = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "epoch": epochs_done,
            "encoder": self.encoder.state_dict(),
            "decoder": self.decoder.state_dict(),
            "config": self.cfg.to_dict(),
            "fingerprint": fingerprint(self.cfg, self.data_hash),
            "history": [dict(row) for row in self.history],
        }
        if with_optimizer:
            out["optimizer"] = self.optimizer.state_dict()
            out["scaler"] = self.scaler.state_dict()
        return out

    def try_resume(self, path: Path | None) -> int:
        """Load ``path`` if it is this run's resume file; returns the epochs already done."""
        if path is None or not Path(path).exists():
            return 0
        ckpt = _load_model_file(path)
        if ckpt.get("fingerprint") != fingerprint(self.cfg, self.data_hash):
            log.warning("ignoring resume file %s: it was written with other settings or data", path)
            return 0
        if "optimizer" not in ckpt:
            raise FormatError(f"{path}: a finished model file, not a resume file (no optimizer)")
        self.encoder.load_state_dict(ckpt["encoder"])
        self.decoder.load_state_dict(ckpt["decoder"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.history = list(ckpt["history"])
        log.info("resumed from %s after epoch %d/%d", path, ckpt["epoch"], self.cfg.epochs)
        return int(ckpt["epoch"])

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            loss, contrast = vipe_loss(self.encoder, self.decoder, batch, self.cfg.weight_3d)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), contrast

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of freshly drawn examples; seeded by (seed, epoch) alone."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        t0 = time.perf_counter()
        examples = self.train_sampler.draw(cfg.examples_per_epoch, rng)
        self.encoder.train()
        self.decoder.train()
        total, contrast, count = 0.0, 0.0, 0
        order = rng.permutation(cfg.examples_per_epoch)
        steps = -(-cfg.examples_per_epoch // cfg.batch_size)
        for batch in tqdm(
            _batches(examples, cfg.batch_size, self.device, order),
            total=steps,
            desc=f"teacher epoch {epoch + 1}",
            leave=False,
            disable=None,
        ):
            n = len(batch["pose1"])
            loss, contra = self._step(batch)
            total, contrast, count = total + loss * n, contrast + contra * n, count + n
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": float(total) / count}
        row["train_contrast"] = float(contrast) / count
        row.update(self.validate(epoch))
        log.info("teacher epoch %d: %s (%.1f s)", epoch + 1, row, seconds)
        return row

    def validate(self, epoch: int) -> dict:
        """Loss on examples of the held-out subjects (one fixed draw, the same every epoch)."""
        if self.val_sampler is None or self.cfg.val_examples == 0:
            return {}
        if self._val_examples is None:
            rng = np.random.default_rng([self.cfg.seed, 2**31])
            self._val_examples = self.val_sampler.draw(self.cfg.val_examples, rng)
        examples = self._val_examples
        self.encoder.eval()
        self.decoder.eval()
        total, contrast, count = 0.0, 0.0, 0
        order = np.arange(self.cfg.val_examples)
        with torch.no_grad():
            for batch in _batches(examples, self.cfg.batch_size, self.device, order):
                n = len(batch["pose1"])
                loss, contra = vipe_loss(self.encoder, self.decoder, batch, self.cfg.weight_3d)
                total, contrast, count = (
                    total + float(loss) * n,
                    contrast + float(contra) * n,
                    count + n,
                )
        return {"val_loss": total / count, "val_contrast": contrast / count}


def train_teacher(
    config: TeacherConfig,
    out_path: Path,
    resume_path: Path | None = None,
    sequences: Sequence[Sequence3d] | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train VIPE* and write the model file ``out_path``; returns what was written.

    ``sequences``: 3D takes (any source, see :mod:`vidmine.embed.teacher_data`); default the
    synthetic motion of ``config``'s subjects. They are split by subject (``subjects_train``,
    ``subjects_test``). ``resume_path`` is rewritten after every epoch, and a rerun with the same
    settings and data continues after the last finished epoch; it is removed at the end.
    """
    cfg = config
    if sequences is None:
        sequences = synthetic_sequences(
            (*cfg.subjects_train, *cfg.subjects_test),
            frames=cfg.synthetic_frames,
            sequences_per_action=cfg.synthetic_sequences,
            seed=cfg.synthetic_seed,
        )
    train_seqs, val_seqs = split_by_subject(sequences, cfg.subjects_train, cfg.subjects_test)
    if not train_seqs:
        raise ValueError(f"no sequence of the training subjects {list(cfg.subjects_train)}")
    trainer = TeacherTrainer(cfg, train_seqs, val_seqs)
    start = trainer.try_resume(resume_path)
    for epoch in tqdm(
        range(start, cfg.epochs), initial=start, total=cfg.epochs, desc="teacher", disable=None
    ):
        trainer.history.append(trainer.train_epoch(epoch))
        if resume_path is not None:
            atomic_save(trainer.state(epoch + 1, with_optimizer=True), Path(resume_path))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, trainer.history[-1])
    final = trainer.state(cfg.epochs, with_optimizer=False)
    atomic_save(final, Path(out_path))
    if resume_path is not None:
        Path(resume_path).unlink(missing_ok=True)
    return final


# --------------------------------------------------------------------- loading
def _load_model_file(path: Path) -> dict:
    """A vidmine teacher file, weights-only (no pickled code runs); one-line errors."""
    if not Path(path).is_file():
        raise FormatError(f"{path}: no such teacher model file")
    try:
        data = load_state_dict(path)
    except WeightsError as exc:
        raise FormatError(str(exc)) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or ["the file is empty or cut short"])[0]
        raise FormatError(f"{path}: not a readable torch file: {reason}") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise FormatError(f"{path}: not a vidmine VIPE* teacher file (format {MODEL_FORMAT!r})")
    return data


def _device_for(device: str | torch.device | None) -> torch.device:
    return select_device("auto" if device is None else str(device))


def load_teacher(path: Path, device: str | torch.device | None = None) -> VipeTeacher:
    """A vidmine teacher model file (from :func:`train_teacher`) ready to embed."""
    data = _load_model_file(path)
    cfg = TeacherConfig.from_dict(data["config"])
    encoder = FCResNet(cfg.input_dim, cfg.embedding_dim, cfg.blocks, cfg.hidden, cfg.dropout)
    try:
        encoder.load_state_dict(data["encoder"])
    except RuntimeError as exc:
        raise FormatError(
            f"{path}: encoder weights do not fit its config: {str(exc).splitlines()[0]}"
        ) from None
    dev = _device_for(device)
    meta = {"source": str(path), "config": cfg.to_dict(), "history": data.get("history", [])}
    return VipeTeacher(encoder.to(dev).eval(), cfg.embed_bones, dev, meta)


def load_vpd_teacher(
    model_dir: Path, epoch: int | None = None, device: str | torch.device | None = None
) -> VipeTeacher:
    """VPD's own trained VIPE folder (``config.json`` + ``best_epoch.encoder.pt``, or
    ``epoch<NNNN>.encoder.pt`` with ``epoch``), as ``apply_vipe_model.py`` loads it, but with
    torch's weights-only unpickler: the encoder file is a plain state dict of tensors."""
    folder = Path(model_dir)
    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text())
        embedding_dim = int(config["embedding_dim"])
        blocks, hidden = (int(v) for v in config["encoder_arch"])
        embed_bones = bool(config["embed_bones"])
    except FileNotFoundError:
        raise FormatError(
            f"{config_file}: no such file (a VPD model folder has config.json)"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(
            f"{config_file}: not a VPD VIPE config ({type(exc).__name__}: {exc})"
        ) from None
    name = "best_epoch" if epoch is None else f"epoch{epoch:04d}"
    weights = folder / f"{name}.encoder.pt"
    if not weights.is_file():
        raise FormatError(f"{weights}: no such encoder file")
    in_dim = (len(KEPT_JOINTS) + (len(BONES) if embed_bones else 0)) * 3
    encoder = FCResNet(in_dim, embedding_dim, blocks, hidden)
    try:
        state = load_state_dict(weights)
        encoder.load_state_dict(state)
    except WeightsError as exc:
        raise FormatError(str(exc)) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        reason = (str(exc).strip().splitlines() or ["empty"])[0]
        raise FormatError(
            f"{weights}: not VPD encoder weights for {config_file.name}: {reason}"
        ) from None
    dev = _device_for(device)
    meta = {"source": str(weights), "vpd_config": config}
    return VipeTeacher(encoder.to(dev).eval(), embed_bones, dev, meta)


# --------------------------------------------------------------------- apply
def _pose_file(pose_dir: Path, video: str) -> Path:
    """``pose_dir/<video>/coco_keypoints.json.gz`` or the flat ``pose_dir/<video>.json.gz``."""
    nested = Path(pose_dir) / video / "coco_keypoints.json.gz"
    flat = Path(pose_dir) / f"{video}.json.gz"
    if nested.is_file():
        return nested
    if flat.is_file():
        return flat
    raise FormatError(f"{pose_dir}: video {video}: no {nested.name} in {video}/ nor {flat.name}")


def embed_pose_folder(
    model: VipeTeacher,
    pose_dir: Path,
    out_dir: Path,
    video: str,
    min_score: float = 0.0,
    flip: bool = True,
) -> Path | None:
    """Embed one video of a VPD pose folder and write ``out_dir/<video>.emb.pkl`` as
    ``apply_vipe_model.py`` does by default; returns the file, or None when no pose passed
    ``min_score`` (VPD then writes no file either).

    Every pose scoring ``>= min_score`` is embedded plain and, with ``flip``, mirrored; a frame
    with one pose gets meta ``{'kp_score': mean joint confidence, 'is_mean': False, 'is_flip':
    False}``, a frame with several the mean of their embeddings and ``{'kp_score': the lowest,
    'is_mean': True}``. With ``flip`` each embedding is (2, D), row 1 the mirrored pose.
    """
    poses = read_vpd_keypoints(_pose_file(pose_dir, video))
    frames, scores, keypoints = [], [], []
    for frame, candidates in poses.items():
        for pose in candidates:
            if pose.score >= min_score:
                frames.append(frame)
                scores.append(float(np.mean(pose.keypoints[:, 2])))
                keypoints.append(pose.keypoints)
    if not keypoints:
        return None
    kp = np.stack(keypoints)
    plain = model.embed(kp)
    mirrored = model.embed(kp, flip=True) if flip else None
    features = _mean_by_frame(frames, scores, plain, mirrored)
    path = features_path(out_dir, video)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_vpd_features(path, features)
    return path


def _mean_by_frame(
    frames: list[int], scores: list[float], plain: np.ndarray, mirrored: np.ndarray | None
) -> list[VpdFeature]:
    """VPD's ``mean_embs_by_frame``: one entry per frame, several poses averaged."""
    rows: dict[int, list[int]] = {}
    for i, frame in enumerate(frames):
        rows.setdefault(frame, []).append(i)
    out = []
    for frame, idx in sorted(rows.items()):
        emb = plain[idx].mean(axis=0)
        if mirrored is not None:
            emb = np.stack([emb, mirrored[idx].mean(axis=0)])
        if len(idx) == 1:
            meta = {"kp_score": scores[idx[0]], "is_mean": False, "is_flip": False}
        else:
            meta = {"kp_score": min(scores[i] for i in idx), "is_mean": True}
        out.append(VpdFeature(frame, emb.astype(np.float32), meta))
    return out


# --------------------------------------------------------------------- measure
def cross_view_retrieval(
    embed_fn: Callable[[np.ndarray], np.ndarray], views: np.ndarray, ks: Sequence[int] = (1, 10)
) -> dict[str, float]:
    """Cross-view retrieval (hit@k): ``views`` (P, C, 17, 3) are P poses each seen by C cameras.

    For every ordered camera pair (a, b), each pose seen by a is a query and the P poses seen by
    b the gallery; a hit@k when the same pose is among the k nearest (L2) gallery embeddings.
    ``embed_fn`` maps (N, 17, 3) poses to (N, D). The rates are averaged over all pairs.
    """
    views = np.asarray(views)
    if views.ndim != 4 or views.shape[1] < 2 or views.shape[2:] != (17, 3):
        raise ValueError(f"views must be (poses, cameras >= 2, 17, 3), got {views.shape}")
    p, c = views.shape[:2]
    emb = np.asarray(embed_fn(views.reshape(p * c, 17, 3)), dtype=np.float64).reshape(p, c, -1)
    hits = {k: [] for k in ks}
    for a in range(c):
        for b in range(c):
            if a == b:
                continue
            dist = np.linalg.norm(emb[:, a, None] - emb[None, :, b], axis=-1)
            rank = np.sum(
                dist < np.diag(dist)[:, None], axis=1
            )  # gallery items nearer than the truth
            for k in ks:
                hits[k].append(np.mean(rank < k))
    return {f"hit@{k}": float(np.mean(v)) for k, v in hits.items()}


def retrieval_report(
    model: VipeTeacher,
    held_out: Sequence[Sequence3d],
    cameras: int = 4,
    frame_stride: int = 15,
    seed: int = 0,
) -> dict:
    """Cross-view retrieval of ``model`` and of the raw-2D baseline (row 0 of
    ``raw_2d_features``) on the same views of held-out takes by held-out cameras: the metrics
    the workflow reports (``{'teacher': {hit@1, hit@10}, 'raw_2d': {...}, 'poses', 'cameras'}``).
    """
    views = retrieval_views(held_out, held_out_cameras(cameras), frame_stride, seed)
    return {
        "teacher": cross_view_retrieval(model.embed, views),
        "raw_2d": cross_view_retrieval(lambda kp: raw_2d_features(kp, flip=False), views),
        "poses": int(views.shape[0]),
        "cameras": int(views.shape[1]),
    }
