"""Side-by-side GIF of a lifted track: 2D keypoints on a blank frame, rotating 3D skeleton.

Frame-less on purpose: the report shows the lift without redistributing video pixels.
Colours follow the original visualisation: right-side joints red, the rest black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidmine.formats.videopose3d import interpolate_missing
from vidmine.lifter.skeleton import COCO_BONES, COCO_RIGHT, H36M_PARENTS, H36M_RIGHT


def _to_plot_axes(pose_cam: np.ndarray) -> np.ndarray:
    """Camera space (x right, y down, z forward) -> plot space (x, depth, up), root-centred."""
    p = pose_cam - pose_cam[:, :1]
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def render_lift_gif(
    keypoints_px: np.ndarray,
    poses_3d: np.ndarray,
    width: int,
    height: int,
    path: Path,
    fps: float = 25.0,
    size: float = 3.0,
    max_frames: int = 150,
    turns: float = 1.0,
) -> Path:
    """Write ``path`` (GIF, Pillow writer; no ImageMagick needed) and return it.

    The 3D view turns ``turns`` times over the clip so depth errors are visible; at most
    ``max_frames`` frames are drawn (evenly subsampled) to keep report files small.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    kp = interpolate_missing(keypoints_px)
    pose = _to_plot_axes(np.asarray(poses_3d, dtype=np.float64))
    idx = np.linspace(0, len(kp) - 1, min(len(kp), max_frames)).round().astype(int)
    fig = plt.figure(figsize=(size * 2, size))
    ax2d = fig.add_subplot(1, 2, 1)
    ax3d = fig.add_subplot(1, 2, 2, projection="3d")
    _setup_2d(ax2d, kp, width, height)
    _setup_3d(ax3d)
    lines2d = [
        ax2d.plot([], [], c=_colour(a, b, COCO_RIGHT, "white"), lw=2)[0] for a, b in COCO_BONES
    ]
    bones3d = [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0]
    lines3d = [
        ax3d.plot([], [], [], c=_colour(j, j, H36M_RIGHT, "black"), lw=2)[0] for j, _ in bones3d
    ]

    def draw(k: int) -> list:
        f = idx[k]
        for line, (a, b) in zip(lines2d, COCO_BONES, strict=True):
            line.set_data(kp[f, [a, b], 0], kp[f, [a, b], 1])
        for line, (j, p) in zip(lines3d, bones3d, strict=True):
            line.set_data_3d(pose[f, [j, p], 0], pose[f, [j, p], 1], pose[f, [j, p], 2])
        ax3d.view_init(elev=15, azim=-90 + 360 * turns * k / len(idx))
        return lines2d + lines3d

    anim = FuncAnimation(fig, draw, frames=len(idx), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    return path


def _colour(a: int, b: int, right: tuple[int, ...], other: str) -> str:
    return "red" if a in right or b in right else other


def _setup_2d(ax, kp: np.ndarray, width: int, height: int) -> None:
    """Black panel cropped to the track's extent (plus a margin) inside the image."""
    lo, hi = kp.reshape(-1, 2).min(axis=0), kp.reshape(-1, 2).max(axis=0)
    half = (hi - lo).max() * 0.6 + 1
    mid = (lo + hi) / 2
    ax.set_facecolor("black")
    ax.set_xlim(max(mid[0] - half, 0), min(mid[0] + half, width))
    ax.set_ylim(min(mid[1] + half, height), max(mid[1] - half, 0))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("2D track")


def _setup_3d(ax, radius: float = 1.0) -> None:
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_zlim(-radius, radius)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])
    ax.set_title("3D lift")


def copy_or_placeholder_gif(gifs: list[Path], target: Path) -> Path:
    """The report's lifted-track GIF: the first rendered one, or a one-frame GIF saying that
    the dataset had no person track to lift (a report item must exist either way)."""
    from PIL import Image, ImageDraw

    from vidmine.io import atomic_path, link_or_copy

    with atomic_path(target) as tmp:
        if gifs:
            link_or_copy(gifs[0], tmp)
        else:
            image = Image.new("RGB", (320, 80), "white")
            ImageDraw.Draw(image).text((10, 30), "no person tracks to lift", fill="black")
            image.save(tmp, format="GIF")
    return target
