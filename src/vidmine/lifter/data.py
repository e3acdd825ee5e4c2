"""Pose datasets for the lifter: one in-memory form, several readers.

Every source ends up as a :class:`PoseDataset`: a list of per-camera sequences holding
normalised 2D input, camera-space 3D targets (joint 0 = absolute root trajectory, the
others root-relative, metres; docs/formats/videopose3d.md, "How run.py consumes 2D and 3D") and the
camera intrinsics. Readers:

* :func:`load_h36m` - VideoPose3D's ``data_3d_h36m.npz`` + ``data_2d_h36m_<src>.npz``.
* :func:`dataset_from_arrays` - the boundary for any other source (the synthetic
  generator, and later the Kinetics pseudo-3D importer): plain arrays in, dataset out.

VideoPose3D's npz files (Human3.6M here, ``data_2d_custom_<name>.npz`` in
:mod:`vidmine.lifter.lift`) are parsed by :mod:`vidmine.formats.videopose3d` only, with its
restricted unpickler, and missing keypoints are filled by its
:func:`~vidmine.formats.videopose3d.interpolate_missing`, the one gap rule of the exports
and the lifter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidmine.formats.videopose3d import (
    H36M_KEPT_32,  # the joints load_h36m keeps (through h36m_reduce_to_17)
    h36m_reduce_to_17,
    interpolate_missing,
    read_h36m_2d,
    read_h36m_3d,
)
from vidmine.lifter.camera import (
    normalize_screen_coordinates,
    normalized_intrinsics,
    world_to_camera,
)
from vidmine.lifter.skeleton import COCO, H36M, Layout, get_layout

H36M_TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")


@dataclass
class PoseSequence:
    """One subject/action seen by one camera."""

    subject: str
    action: str
    camera: int
    pos2d: np.ndarray  # (T, J_in, 2) float32, normalised screen coordinates
    pos3d: np.ndarray | None  # (T, 17, 3) float32 camera space; None when unlabelled
    intrinsics: np.ndarray  # (9,) float32, normalised units
    res: tuple[int, int]  # (width, height) in pixels

    def __len__(self) -> int:
        return len(self.pos2d)


@dataclass
class PoseDataset:
    """All sequences of a source plus the 2D layout needed for flipping."""

    sequences: list[PoseSequence]
    input_layout: Layout
    fps: float
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def select(self, subjects: Iterable[str]) -> list[PoseSequence]:
        """Sequences of the given subjects, in dataset order; unknown subjects are an error."""
        wanted = list(subjects)
        have = {s.subject for s in self.sequences}
        missing = [s for s in wanted if s not in have]
        if missing:
            raise ValueError(f"subjects {missing} not in {self.name} (have {sorted(have)})")
        return [s for s in self.sequences if s.subject in set(wanted)]

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sequences})


def dataset_from_arrays(
    poses_2d: Sequence[np.ndarray],
    poses_3d: Sequence[np.ndarray | None],
    subjects: Sequence[str],
    actions: Sequence[str],
    intrinsics: Sequence[np.ndarray],
    resolutions: Sequence[tuple[int, int]],
    input_layout: str = "coco",
    cameras: Sequence[int] | None = None,
    fps: float = 50.0,
    name: str = "arrays",
    pixels: bool = True,
) -> PoseDataset:
    """Build a dataset from per-sequence arrays (the entry point for new 3D sources).

    ``poses_2d[i]`` is (T, J_in, 2), in pixels when ``pixels`` (NaN = missing, filled by
    interpolation) else already normalised. ``poses_3d[i]`` is (T, 17, 3) camera-space
    metres in the H36M-17 order (absolute, or root-relative with the root kept absolute),
    or None for 2D-only (semi-supervised) material. ``intrinsics[i]`` is the normalised
    9-vector. The Kinetics pseudo-3D importer of the exports issue is meant to call this.
    """
    layout = get_layout(input_layout)
    cams = list(cameras) if cameras is not None else [0] * len(poses_2d)
    seqs = []
    for i, kp in enumerate(poses_2d):
        w, h = resolutions[i]
        kp = interpolate_missing(kp)
        if pixels:
            kp = normalize_screen_coordinates(kp, w, h)
        if kp.shape[1] != layout.num_joints:
            raise ValueError(f"sequence {i}: {kp.shape[1]} joints, layout {layout.name}")
        p3 = poses_3d[i]
        if p3 is not None:
            p3 = root_relative(np.asarray(p3, dtype=np.float32))
            if len(p3) != len(kp):
                raise ValueError(f"sequence {i}: {len(kp)} 2D frames vs {len(p3)} 3D frames")
        seqs.append(
            PoseSequence(
                subject=subjects[i],
                action=actions[i],
                camera=cams[i],
                pos2d=kp.astype(np.float32),
                pos3d=p3,
                intrinsics=np.asarray(intrinsics[i], dtype=np.float32),
                res=(int(w), int(h)),
            )
        )
    return PoseDataset(seqs, layout, fps, name=name)


def root_relative(pos: np.ndarray) -> np.ndarray:
    """Joints 1.. relative to joint 0, joint 0 kept absolute (VideoPose3D's 3D layout)."""
    out = np.array(pos, dtype=np.float32, copy=True)
    out[:, 1:] -= out[:, :1]
    return out


def load_h36m_cameras(path: Path) -> dict[str, list[dict]]:
    """Read the camera JSON (schema in docs/lifter.md) -> subject -> 4 camera dicts.

    The Human3.6M calibration is not bundled with vidmine: copy it from the dataset
    into this file once. ``translation`` is in millimetres unless the file says
    ``"translation_unit": "m"`` (the original tables are in millimetres).
    """
    doc = json.loads(Path(path).read_text())
    scale = 1.0 if doc.get("translation_unit", "mm") == "m" else 1e-3
    out: dict[str, list[dict]] = {}
    for subject, cams in doc["cameras"].items():
        out[subject] = []
        for cam in cams:
            w, h = int(cam["res_w"]), int(cam["res_h"])
            out[subject].append(
                {
                    "res": (w, h),
                    "orientation": np.asarray(cam["orientation"], dtype=np.float64),
                    "translation": np.asarray(cam["translation"], dtype=np.float64) * scale,
                    "intrinsics": normalized_intrinsics(
                        cam["focal_length"],
                        cam["center"],
                        w,
                        h,
                        cam.get("radial_distortion"),
                        cam.get("tangential_distortion"),
                    ),
                    "azimuth": float(cam.get("azimuth", 0.0)),
                }
            )
    return out


def _layout_from_metadata(meta: dict) -> Layout:
    """The 2D layout of an h36m 2D file; the gt file has no ``layout_name``
    (docs/formats/videopose3d.md, "Surprises")."""
    name = meta.get("layout_name")
    if name is None:
        left = [int(i) for i in meta["keypoints_symmetry"][0]]
        name = "coco" if left == list(COCO.left) else "h36m"
    layout = get_layout(name)
    if "keypoints_symmetry" in meta:
        left, right = (tuple(int(i) for i in side) for side in meta["keypoints_symmetry"])
        layout = Layout(layout.name, layout.names, left, right)
    return layout


def load_h36m(path_3d: Path, path_2d: Path, cameras_path: Path) -> PoseDataset:
    """Human3.6M in VideoPose3D's npz format -> a dataset in camera space.

    World 3D (32 joints, metres) is reduced to the 17 kept joints, moved into each
    camera, and made root-relative; 2D is truncated to the mocap length and normalised
    with that camera's resolution. Cameras whose 2D entry is None are skipped.
    """
    pos3d = read_h36m_3d(path_3d)
    pos2d, metadata = read_h36m_2d(path_2d)
    layout = _layout_from_metadata(metadata)
    cameras = load_h36m_cameras(Path(cameras_path))
    seqs = []
    for subject in sorted(pos3d):
        for action in sorted(pos3d[subject]):
            world = h36m_reduce_to_17(pos3d[subject][action]).astype(np.float64)
            for cam_idx, kp in enumerate(pos2d.get(subject, {}).get(action, [])):
                if kp is None:
                    continue
                cam = cameras[subject][cam_idx]
                if len(kp) < len(world):
                    raise ValueError(f"{subject}/{action} cam {cam_idx}: 2D shorter than mocap")
                cam3d = world_to_camera(world, cam["orientation"], cam["translation"])
                w, h = cam["res"]
                norm2d = normalize_screen_coordinates(np.asarray(kp[: len(world), :, :2]), w, h)
                seqs.append(
                    PoseSequence(
                        subject=subject,
                        action=action,
                        camera=cam_idx,
                        pos2d=norm2d.astype(np.float32),
                        pos3d=root_relative(cam3d),
                        intrinsics=cam["intrinsics"],
                        res=(w, h),
                    )
                )
    return PoseDataset(seqs, layout, fps=50.0, name=f"h36m:{Path(path_2d).stem}")


__all__ = [
    "H36M",
    "H36M_KEPT_32",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "PoseDataset",
    "PoseSequence",
    "dataset_from_arrays",
    "load_h36m",
    "load_h36m_cameras",
]
