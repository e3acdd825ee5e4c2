"""Lifter settings: where the data comes from and how to train.

Defaults are the original VideoPose3D ones (FORMATS.md 1.10) except ``epochs`` (60, the
code default) and the data source (the synthetic set, which needs no download). The
workflow passes per-dataset ``lifter:`` config through CLI flags of the same names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vidmine.lifter.data import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, PoseDataset, load_h36m
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

    source: str = "synthetic"  # synthetic | h36m
    input_layout: str = "coco"  # synthetic only; h36m files carry their own layout
    h36m_dir: str | None = None
    h36m_2d: str = "cpn_ft_h36m_dbb"
    h36m_cameras: str | None = None
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


def data_files(cfg: DataConfig) -> list[Path]:
    """The files :func:`load_dataset` reads for ``cfg`` (none for the synthetic set), so the
    workflow's rules can declare them."""
    if cfg.source != "h36m":
        return []
    if not cfg.h36m_dir or not cfg.h36m_cameras:
        raise ValueError("h36m data needs h36m_dir and h36m_cameras")
    root = Path(cfg.h36m_dir)
    return [
        root / "data_3d_h36m.npz",
        root / f"data_2d_h36m_{cfg.h36m_2d}.npz",
        Path(cfg.h36m_cameras),
    ]


def load_dataset(cfg: DataConfig) -> PoseDataset:
    """Materialise the configured source as a :class:`PoseDataset`."""
    if cfg.source == "synthetic":
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
    if cfg.source == "h36m":
        return load_h36m(*data_files(cfg))
    raise ValueError(f"unknown lifter data source {cfg.source!r} (synthetic | h36m)")
