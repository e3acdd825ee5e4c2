"""Lifter settings: where the data comes from and how to train.

Defaults are the original VideoPose3D ones (docs/formats/videopose3d.md, "Training defaults") except
``epochs`` (60, the code default) and the data source (the synthetic set, which needs no download).
The workflow passes per-dataset ``lifter:`` config through CLI flags of the same names.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from vidmine.lifter.data import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    PoseDataset,
    dataset_from_arrays,
    load_h36m,
)
from vidmine.lifter.synthetic import SyntheticConfig, generate


class _Plain:
    """Round-trips a frozen dataclass through plain dicts (checkpoint metadata)."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        )


@dataclass(frozen=True)
class DataConfig(_Plain):
    """Where the 2D/3D pairs come from and how subjects are split."""

    # synthetic | h36m | kinetics, or several joined by "+" (synthetic+kinetics): mixed
    source: str = "synthetic"
    input_layout: str = "coco"  # synthetic only; h36m files carry their own layout
    h36m_dir: str | None = None
    h36m_2d: str = "cpn_ft_h36m_dbb"
    h36m_cameras: str | None = None
    # `vidmine import-kinetics`'s kinetics_lifter.npz (COCO 2D, pseudo-3D); its clips have no
    # subjects, so every kinetics_test_every-th YouTube video (by a stable hash) is held out.
    kinetics_lifter: str | None = None
    kinetics_test_every: int = 5
    subjects_train: tuple[str, ...] = H36M_TRAIN_SUBJECTS
    subjects_test: tuple[str, ...] = H36M_TEST_SUBJECTS
    subjects_unlabeled: tuple[str, ...] = ()
    # The synthetic generator's own defaults, so the two cannot drift apart.
    synthetic_frames: int = SyntheticConfig.frames
    synthetic_cameras: int = SyntheticConfig.cameras
    synthetic_sequences: int = SyntheticConfig.sequences_per_action
    synthetic_seed: int = SyntheticConfig.seed
    synthetic_noise_px: float = SyntheticConfig.noise_px
    synthetic_drop_rate: float = SyntheticConfig.drop_rate


@dataclass(frozen=True)
class TrainConfig(_Plain):
    """Model and optimisation settings (original defaults)."""

    filter_widths: tuple[int, ...] = (3, 3, 3)
    channels: int = 1024
    dropout: float = 0.25
    causal: bool = False
    epochs: int = 60
    batch_size: int = 1024
    lr: float = 1e-3
    lr_decay: float = 0.95
    augment: bool = True
    tta: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # CUDA, and CPUs with native bf16 (see train._setup_precision)
    # off | on. Off by default: on this project's CPU benchmark it is slower, and the per-epoch
    # BN momentum change makes Dynamo recompile the model every epoch (docs/lifter.md).
    compile: str = "off"
    eval_every: int = 1
    semi_supervised: bool = False
    warmup: int = 1
    bone_length_term: bool = True
    linear_projection: bool = False
    threads: int | None = None


# The workflow's `lifter:` section calls the data source `data` (DataConfig's `source`).
SETTINGS_ALIASES = {"data": "source"}


def section_settings(section: dict) -> dict:
    """A dataset's ``lifter:`` config section with DataConfig's and TrainConfig's field names."""
    return {SETTINGS_ALIASES.get(k, k): v for k, v in section.items()}


SOURCES = ("synthetic", "h36m", "kinetics")
# Sources whose subjects are named (Human3.6M's S1..S11; the synthetic set borrows the names).
NAMED_SUBJECTS = ("synthetic", "h36m")
KINETICS_TRAIN, KINETICS_TEST = "kinetics/train", "kinetics/test"


def sources_of(cfg: DataConfig) -> tuple[str, ...]:
    """The sources ``cfg.source`` names ("synthetic+kinetics" -> both), checked."""
    parts = tuple(dict.fromkeys(p.strip() for p in cfg.source.split("+") if p.strip()))
    unknown = [p for p in parts if p not in SOURCES]
    if unknown or not parts:
        raise ValueError(
            f"unknown lifter data source {cfg.source!r} ({' | '.join(SOURCES)}, or several "
            "joined by +)"
        )
    return parts


def data_files(cfg: DataConfig) -> list[Path]:
    """The files :func:`load_dataset` reads for ``cfg`` (none for the synthetic set), so the
    workflow's rules can declare them."""
    files = []
    parts = sources_of(cfg)
    if "h36m" in parts:
        files += h36m_files(cfg)
    if "kinetics" in parts:
        if not cfg.kinetics_lifter:
            raise ValueError("kinetics data needs kinetics_lifter (vidmine import-kinetics' npz)")
        files.append(Path(cfg.kinetics_lifter))
    return files


def h36m_files(cfg: DataConfig) -> list[Path]:
    """Human3.6M's 3D npz, 2D npz and camera JSON, in :func:`load_h36m`'s argument order."""
    if not cfg.h36m_dir or not cfg.h36m_cameras:
        raise ValueError("h36m data needs h36m_dir and h36m_cameras")
    root = Path(cfg.h36m_dir)
    return [
        root / "data_3d_h36m.npz",
        root / f"data_2d_h36m_{cfg.h36m_2d}.npz",
        Path(cfg.h36m_cameras),
    ]


def subject_split(cfg: DataConfig) -> dict[str, tuple[str, ...]]:
    """The subjects of training, testing and unlabelled use, as the dataset names them.

    One named source keeps the names as configured (S1, S9, ...). In a mix every sequence's
    subject is prefixed with its source (``synthetic/S1``, ``h36m/S1``), so the configured
    split applies to each named source; Kinetics adds ``kinetics/train`` and
    ``kinetics/test``.
    """
    parts = sources_of(cfg)
    named = [p for p in parts if p in NAMED_SUBJECTS]

    def expand(subjects: tuple[str, ...]) -> tuple[str, ...]:
        if len(parts) == 1:
            return subjects if named else ()
        return tuple(f"{src}/{s}" for src in named for s in subjects)

    kinetics = "kinetics" in parts
    return {
        "train": expand(cfg.subjects_train) + ((KINETICS_TRAIN,) if kinetics else ()),
        "test": expand(cfg.subjects_test) + ((KINETICS_TEST,) if kinetics else ()),
        "unlabeled": expand(cfg.subjects_unlabeled),
    }


def load_dataset(cfg: DataConfig) -> PoseDataset:
    """Materialise the configured source(s) as one :class:`PoseDataset`.

    Mixed sources must share their 2D layout (COCO for synthetic + Kinetics; Human3.6M's
    detections name theirs); subjects and actions are prefixed with the source, so the
    metrics report each source's actions apart.
    """
    parts = sources_of(cfg)
    loaded = [_load_source(cfg, source) for source in parts]
    if len(loaded) == 1:
        return loaded[0]
    layouts = {d.input_layout.name for d in loaded}
    if len(layouts) > 1:
        named = ", ".join(f"{s}: {d.input_layout.name}" for s, d in zip(parts, loaded, strict=True))
        raise ValueError(f"lifter data {cfg.source!r} mixes 2D layouts ({named})")
    sequences = []
    for source, dataset in zip(parts, loaded, strict=True):
        for seq in dataset.sequences:
            prefix = "" if source == "kinetics" else f"{source}/"
            seq.subject, seq.action = f"{prefix}{seq.subject}", f"{source}/{seq.action}"
            sequences.append(seq)
    first = loaded[0]
    return PoseDataset(sequences, first.input_layout, first.fps, name=cfg.source)


def _load_source(cfg: DataConfig, source: str) -> PoseDataset:
    if source == "kinetics":
        return load_kinetics_dataset(Path(cfg.kinetics_lifter or ""), cfg.kinetics_test_every)
    if source == "synthetic":
        subjects = tuple(
            dict.fromkeys(cfg.subjects_train + cfg.subjects_test + cfg.subjects_unlabeled)
        )
        return generate(
            SyntheticConfig(
                subjects=subjects,
                frames=cfg.synthetic_frames,
                cameras=cfg.synthetic_cameras,
                sequences_per_action=cfg.synthetic_sequences,
                seed=cfg.synthetic_seed,
                noise_px=cfg.synthetic_noise_px,
                drop_rate=cfg.synthetic_drop_rate,
                input_layout=cfg.input_layout,
            )
        )
    return load_h36m(*h36m_files(cfg))


def kinetics_split(youtube_id: str, test_every: int) -> str:
    """``kinetics/test`` for every ``test_every``-th video by a stable hash of its id (all
    clips of one video stay on one side), else ``kinetics/train``."""
    digest = int(hashlib.sha1(youtube_id.encode()).hexdigest()[:8], 16)
    return KINETICS_TEST if test_every > 0 and digest % test_every == 0 else KINETICS_TRAIN


def load_kinetics_dataset(path: Path, test_every: int = 5) -> PoseDataset:
    """``vidmine import-kinetics``' lifter npz as a dataset: COCO pixels in, the pseudo-3D
    (H36M-17, camera metres) out, split into kinetics/train and kinetics/test by video."""
    from vidmine.imports.kinetics import load_kinetics_lifter

    arrays = load_kinetics_lifter(path)
    if not arrays["poses_2d"]:
        raise ValueError(f"{path}: no Kinetics sequence to train on")
    subjects = [kinetics_split(y, test_every) for y in arrays["subjects"]]
    return dataset_from_arrays(
        arrays["poses_2d"],
        arrays["poses_3d"],
        subjects,
        arrays["actions"],
        arrays["intrinsics"],
        arrays["resolutions"],
        input_layout="coco",
        fps=_median_fps(arrays["time"]),
        name=f"kinetics:{Path(path).name}",
    )


def _median_fps(times: list[np.ndarray]) -> float:
    steps = np.concatenate([np.diff(t) for t in times if len(t) > 1] or [np.array([0.04])])
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else 25.0
