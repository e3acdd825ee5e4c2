"""The student's training frames and inputs, built as VPD's loaders build them
(docs/formats/vpd.md, "The pose gate", "Image and mask loading", "Flow PNGs").

A training frame is a crop of a released track whose teacher feature passes the pose gate
(``kp_score``, or ``dp_score``, at least 0.5): VPD only distils poses the teacher could trust.
Its input is the RGB crop scaled to [0, 1] and normalised by a mean and std, plus, when flow is
used, the flow PNG's (dx, dy) read as ``pixel / 255 - 0.5`` (VPD's reading, not the inverse of
the encoding: zero flow is -0.0137; a student trained on it must be fed the same way). Training
augments as VPD does: colour jitter of the RGB, noise on the person's pixels with probability
0.5 where a mask exists (VPD zeroes the noise on the background, the reverse of what its comment
intends; kept, so that a student trained here sees what VPD's sees), a horizontal flip with
probability 0.5 that takes the teacher's flipped row and negates dx, and a random resized crop
of the stacked channels.

Randomness comes from (seed, epoch, position in the epoch) only, so a resumed run and the
uninterrupted one draw the same samples, whatever the number of loader workers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vidmine.formats import FormatError
from vidmine.formats.vpd import FEATURES_SUFFIX, crop_file_names, read_vpd_features

log = logging.getLogger(__name__)

MIN_POSE_SCORE = 0.5  # vpd_dataset/single_frame.py DEFAULT_MIN_POSE_SCORE
JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.05, "hue": 0.05}
CROP_SCALE, CROP_RATIO = (0.5, 1.0), (0.9, 1.1)
MASK_NOISE_PROB, MASK_NOISE_SD = 0.5, math.sqrt(0.05)
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # VPD's 'resnet' entry
FLOW_X_CHANNEL = 3  # dx in the stacked (r, g, b, dx, dy) input
CROP_PATTERN = re.compile(r"^(\d+)\.png$")


@dataclass(frozen=True)
class StudentFrame:
    """One distillation sample: the track (video), the frame, its crop folder and the teacher's
    target, ``(D,)`` or ``(2, D)`` (row 1 the flipped pose); ``(2D,)``/``(2, 2D)`` with motion."""

    video: str
    frame: int
    crop_dir: Path
    target: np.ndarray


def pose_score(meta: dict, source: str) -> float:
    """The teacher's confidence in a frame's pose, as VPD's ``_get_pose_score`` reads it.

    A feature without one (a student's own pickle, meta ``{}``) cannot be a teacher target:
    VPD stops there too, so the error says which file and frame.
    """
    for key in ("dp_score", "kp_score"):
        if meta.get(key) is not None:
            return float(meta[key])
    raise FormatError(f"{source}: no kp_score/dp_score in its meta: not a teacher's feature")


def find_crop_dirs(crops_dirs: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Every track folder ``<root>/<video>/`` of the crops roots, by video name; a name in two
    roots is refused (its teacher feature would be ambiguous)."""
    found: dict[str, Path] = {}
    for root in map(Path, crops_dirs):
        if not root.is_dir():
            raise FormatError(f"{root}: crops folder not found")
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in found:
                raise FormatError(f"{folder}: track {folder.name} also in {found[folder.name]}")
            found[folder.name] = folder
    return found


def _with_motion(frames: list, i: int) -> np.ndarray | None:
    """VPD's ``--motion`` target [e, e - e_prev], only where the previous frame is f - 1."""
    if i == 0 or frames[i - 1].frame != frames[i].frame - 1:
        return None
    emb, prev = frames[i].embedding, frames[i - 1].embedding
    return np.concatenate([emb, emb - prev], axis=-1)


def load_frames(
    teacher_dir: str | os.PathLike,
    crops_dirs: Sequence[str | os.PathLike],
    min_pose_score: float = MIN_POSE_SCORE,
    motion: bool = False,
    flow_name: str | None = None,
) -> list[StudentFrame]:
    """The gated teacher targets of every track that has a crop folder, sorted.

    Tracks exported pose-only (no crop folder), frames without a crop PNG and, when the
    student uses flow (``flow_name``), frames without a flow PNG are skipped, the tracks
    counted in the log: the teacher sees every pose, the crops stage only released tracks.
    """
    teacher_files = sorted(Path(teacher_dir).glob(f"*{FEATURES_SUFFIX}"))
    if not teacher_files:
        raise FormatError(f"{teacher_dir}: no teacher features (*{FEATURES_SUFFIX})")
    folders = find_crop_dirs(crops_dirs)
    out: list[StudentFrame] = []
    width, width_file, no_crops = None, None, []
    for path in teacher_files:
        video = path.name.removesuffix(FEATURES_SUFFIX)
        if video not in folders:
            no_crops.append(video)
            continue
        features = read_vpd_features(path)
        for i, feature in enumerate(features):
            if width is not None and feature.embedding.shape[-1] != width:
                raise FormatError(
                    f"{path}: frame {feature.frame}: embedding width "
                    f"{feature.embedding.shape[-1]}, {width_file} has {width}"
                )
            width, width_file = feature.embedding.shape[-1], path
            if pose_score(feature.meta, f"{path}: frame {feature.frame}") < min_pose_score:
                continue
            target = _with_motion(features, i) if motion else feature.embedding
            names = crop_file_names(feature.frame, flow_name=flow_name or "flow")
            needed = [names["rgb"], *([names["flow"]] if flow_name else [])]
            if target is None or not all((folders[video] / n).is_file() for n in needed):
                continue
            out.append(
                StudentFrame(video, feature.frame, folders[video], target.astype(np.float32))
            )
    if no_crops:
        log.info("%d teacher tracks without crops (pose only): %s", len(no_crops), no_crops[:5])
    if not out:
        raise FormatError(f"{teacher_dir}: no frame passes the pose gate and has a crop")
    return out


def holdout_videos(videos: Sequence[str], fraction: float) -> set[str]:
    """The tracks kept out of training: ``fraction`` of them (at least one when there are
    two or more), chosen by a stable hash of the name so reruns and resumes agree."""
    names = sorted(set(videos))
    if fraction <= 0 or len(names) < 2:
        return set()
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    ranked = sorted(names, key=lambda v: hashlib.sha1(v.encode()).hexdigest())
    return set(ranked[:count])


# ------------------------------------------------------------------ images


def read_image(path: Path, img_dim: int) -> np.ndarray:
    """A PNG as cv2 reads it (BGR, uint8), resized (bilinear) to ``img_dim`` when it differs."""
    image = cv2.imread(str(path))
    if image is None:
        raise FormatError(f"{path}: missing or not a readable image")
    if image.shape[0] != img_dim or image.shape[1] != img_dim:
        image = cv2.resize(image, (img_dim, img_dim))
    return image


def load_rgb(path: Path, img_dim: int) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1], not yet normalised (the jitter works on [0, 1] colours)."""
    rgb = cv2.cvtColor(read_image(path, img_dim), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def load_flow(path: Path, img_dim: int) -> torch.Tensor:
    """(2, H, W) (dx, dy) as VPD's ``_load_flow`` reads a flow PNG: ``pixel / 255 - 0.5``."""
    flow = read_image(path, img_dim)[:, :, :2].astype(np.float32)
    return torch.from_numpy(flow / 255.0 - 0.5).permute(2, 0, 1)


def load_background(path: Path, img_dim: int) -> torch.Tensor:
    """(H, W) bool, True where VPD's mask PNG is 0 (its ``_load_bg_mask``)."""
    return torch.from_numpy(read_image(path, img_dim)[:, :, 0] == 0)


def normalise(rgb: torch.Tensor, mean_std: Sequence[Sequence[float]]) -> torch.Tensor:
    mean = torch.tensor(mean_std[0], dtype=rgb.dtype).view(3, 1, 1)
    std = torch.tensor(mean_std[1], dtype=rgb.dtype).view(3, 1, 1)
    return (rgb - mean) / std


def flip_input(image: torch.Tensor) -> torch.Tensor:
    """The mirrored input: columns reversed and, with flow, dx negated (motion mirrors too)."""
    flipped = torch.flip(image, (2,))
    if flipped.shape[0] > FLOW_X_CHANNEL:
        flipped[FLOW_X_CHANNEL] *= -1
    return flipped


def plain_input(
    crop_dir: Path, frame: int, img_dim: int, mean_std, flow_name: str | None
) -> torch.Tensor:
    """The unaugmented input of one frame: (3, H, W), or (5, H, W) with flow."""
    names = crop_file_names(frame, flow_name=flow_name or "flow")
    image = normalise(load_rgb(crop_dir / names["rgb"], img_dim), mean_std)
    if flow_name is None:
        return image
    return torch.cat([image, load_flow(crop_dir / names["flow"], img_dim)])


def dataset_mean_std(frames: Sequence[StudentFrame], img_dim: int, limit: int = 500) -> tuple:
    """Per-channel RGB mean and std of (up to ``limit``, evenly spread) training crops.

    VPD normalises each of its datasets by constants measured on that dataset (its
    ``RGB_MEAN_STD``); vidmine's datasets are new, so the same statistics are measured here.
    """
    picks = frames[:: max(1, len(frames) // limit)][:limit]
    pixels = torch.stack(
        [load_rgb(f.crop_dir / crop_file_names(f.frame)["rgb"], img_dim) for f in picks]
    )
    mean = pixels.mean(dim=(0, 2, 3))
    std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return (tuple(mean.tolist()), tuple(std.tolist()))


class StudentDataset(torch.utils.data.Dataset):
    """One epoch of training samples: ``plan`` indexes ``frames`` (VPD draws its samples with
    replacement), and item ``k`` is augmented with the generator seeded by (seed, epoch, k)."""

    def __init__(
        self,
        frames: Sequence[StudentFrame],
        img_dim: int,
        mean_std,
        flow_name: str | None,
        augment: bool = True,
    ) -> None:
        self.frames, self.img_dim, self.mean_std = list(frames), img_dim, mean_std
        self.flow_name, self.augment = flow_name, augment
        self.plan: np.ndarray = np.arange(len(self.frames))
        self.seeds: np.ndarray = np.zeros(len(self.frames), np.int64)

    def set_epoch(self, seed: int, epoch: int, samples: int) -> None:
        """Draw this epoch's ``samples`` frames and their augmentation seeds."""
        rng = np.random.default_rng([seed, epoch])
        self.plan = rng.integers(0, len(self.frames), samples)
        self.seeds = rng.integers(0, 2**62, samples)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        frame = self.frames[int(self.plan[k])]
        if not self.augment:
            return {"img": self.input_of(frame, flip=False), "emb": _row(frame.target, False)}
        with torch.random.fork_rng(devices=[]):  # the CPU generator only: cheap, no CUDA
            torch.default_generator.manual_seed(int(self.seeds[k]))
            return self.augmented(frame)

    def input_of(self, frame: StudentFrame, flip: bool) -> torch.Tensor:
        image = plain_input(
            frame.crop_dir, frame.frame, self.img_dim, self.mean_std, self.flow_name
        )
        return flip_input(image) if flip else image

    def augmented(self, frame: StudentFrame) -> dict[str, torch.Tensor]:
        """VPD's training sample, drawing from torch's (forked, seeded) generator."""
        from torchvision import transforms

        flip = frame.target.ndim == 2 and bool(torch.rand(()) < 0.5)
        names = crop_file_names(frame.frame, flow_name=self.flow_name or "flow")
        rgb = transforms.ColorJitter(**JITTER)(
            load_rgb(frame.crop_dir / names["rgb"], self.img_dim)
        )
        image = normalise(rgb, self.mean_std)
        mask_path = frame.crop_dir / names["mask"]
        if bool(torch.rand(()) <= MASK_NOISE_PROB) and mask_path.is_file():
            noise = torch.randn(image.shape) * MASK_NOISE_SD
            noise[:, load_background(mask_path, self.img_dim)] = 0  # VPD's: the person is jittered
            image = image + noise
        if self.flow_name is not None:
            image = torch.cat([image, load_flow(frame.crop_dir / names["flow"], self.img_dim)])
        if flip:
            image = flip_input(image)
        crop = transforms.RandomResizedCrop(
            self.img_dim, scale=CROP_SCALE, ratio=CROP_RATIO, antialias=True
        )
        return {"img": crop(image), "emb": _row(frame.target, flip)}


def _row(target: np.ndarray, flip: bool) -> torch.Tensor:
    """The teacher row a sample learns: row 1 for a flipped input, row 0 otherwise."""
    return torch.from_numpy(target[int(flip)] if target.ndim == 2 else target)
