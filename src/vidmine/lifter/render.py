"""Side-by-side GIF of a lifted track: the 2D skeleton on the released frame, the 3D skeleton
on a ground plane with metric axes.

The frames come from the export's ``videopose3d_videos`` (released, face-blurred pixels
only: the report never reads the private zone); without a video the 2D panel is black.
Colours follow the original visualisation: right-side joints red, the rest black (white
on the frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidmine.formats.videopose3d import interpolate_missing
from vidmine.lifter.skeleton import COCO_BONES, COCO_RIGHT, H36M_PARENTS, H36M_RIGHT

FEET = (3, 6)  # H36M-17 ankles


def to_plot_axes(pose_cam: np.ndarray) -> np.ndarray:
    """Camera space (x right, y down, z forward) -> plot space (x, depth, up), root-centred."""
    p = pose_cam - pose_cam[:, :1]
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def ground_height(pose_plot: np.ndarray) -> float:
    """Height of the ground plane under a root-centred track: the 5th percentile of the
    lower foot's height (robust to a few frames with a foot lifted wrongly high or low)."""
    lower_foot = np.nanmin(pose_plot[:, list(FEET), 2], axis=1)
    lower_foot = lower_foot[np.isfinite(lower_foot)]
    return float(np.percentile(lower_foot, 5)) if len(lower_foot) else -0.9


def _video_frames(video: Path | None, indices: np.ndarray) -> dict[int, np.ndarray]:
    if video is None or not Path(video).is_file():
        return {}
    from vidmine.frames import read_frames_at

    return {i: f[..., ::-1] for i, f in read_frames_at(video, [int(i) for i in indices]).items()}


def render_lift_gif(
    keypoints_px: np.ndarray,
    poses_3d: np.ndarray,
    width: int,
    height: int,
    path: Path,
    fps: float = 25.0,
    size: float = 3.5,
    max_frames: int = 150,
    turns: float = 0.5,
    video: Path | None = None,
    confidence: np.ndarray | None = None,
) -> Path:
    """Write ``path`` (GIF, Pillow writer; no ImageMagick needed) and return it.

    The 3D view turns ``turns`` times over the clip so depth errors are visible; at most
    ``max_frames`` frames are drawn (evenly subsampled) to keep report files small. Frames
    without a lift (NaN: a long gap in the track) show the frame alone.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    kp = interpolate_missing(keypoints_px)
    pose = to_plot_axes(np.asarray(poses_3d, dtype=np.float64))
    idx = np.linspace(0, len(kp) - 1, min(len(kp), max_frames)).round().astype(int)
    frames = _video_frames(video, idx)
    fig = plt.figure(figsize=(size * 2.2, size))
    ax2d = fig.add_axes((0.01, 0.09, 0.44, 0.82))
    ax3d = fig.add_axes((0.47, 0.0, 0.52, 0.95), projection="3d")
    image = _setup_2d(ax2d, kp, width, height, next(iter(frames.values()), None))
    ground = ground_height(pose)
    _setup_3d(ax3d, pose, ground)
    lines2d = [
        ax2d.plot([], [], c=_colour(a, b, COCO_RIGHT, "white"), lw=2.5)[0] for a, b in COCO_BONES
    ]
    bones3d = [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0]
    lines3d = [
        ax3d.plot([], [], [], c=_colour(j, j, H36M_RIGHT, "black"), lw=3)[0] for j, _ in bones3d
    ]
    caption = ax2d.set_xlabel("", fontsize=9)

    def draw(k: int) -> list:
        f = idx[k]
        if f in frames:
            image.set_data(frames[f])
        for line, (a, b) in zip(lines2d, COCO_BONES, strict=True):
            line.set_data(kp[f, [a, b], 0], kp[f, [a, b], 1])
        lifted = np.isfinite(pose[f]).all()
        for line, (j, p) in zip(lines3d, bones3d, strict=True):
            xyz = pose[f, [j, p]] if lifted else np.empty((0, 3))
            line.set_data_3d(xyz[:, 0], xyz[:, 1], xyz[:, 2])
        ax3d.view_init(elev=12, azim=-90 + 360 * turns * k / len(idx))
        conf = f"confidence {confidence[f]:.2f}" if confidence is not None else ""
        caption.set_text(f"frame {f}  {conf if lifted else 'not lifted (gap in the track)'}")
        return lines2d + lines3d

    anim = FuncAnimation(fig, draw, frames=len(idx), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    return path


def _colour(a: int, b: int, right: tuple[int, ...], other: str) -> str:
    return "red" if a in right or b in right else other


def _setup_2d(ax, kp: np.ndarray, width: int, height: int, first: np.ndarray | None):
    """The released frame (or a black panel) cropped to the track's extent plus a margin;
    returns the image artist whose pixels each GIF frame replaces."""
    lo, hi = kp.reshape(-1, 2).min(axis=0), kp.reshape(-1, 2).max(axis=0)
    half = (hi - lo).max() * 0.6 + 1
    mid = (lo + hi) / 2
    pixels = first if first is not None else np.zeros((height, width, 3), dtype=np.uint8)
    image = ax.imshow(pixels, extent=(0, width, height, 0), interpolation="bilinear")
    ax.set_xlim(max(mid[0] - half, 0), min(mid[0] + half, width))
    ax.set_ylim(min(mid[1] + half, height), max(mid[1] - half, 0))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("2D track on the released frame" if first is not None else "2D track", fontsize=9)
    return image


def _setup_3d(ax, pose: np.ndarray, ground: float) -> None:
    """Metric axes fitted to the track, and a grid on the ground plane."""
    from matplotlib.ticker import MaxNLocator

    finite = pose[np.isfinite(pose).all(axis=(1, 2))]
    if len(finite):  # a cube that holds the body (98 % of its joints) standing on the ground
        across = np.percentile(np.abs(finite[..., :2]), 98)
        up = np.percentile(finite[..., 2], 99) - ground
        radius = max(0.4, float(max(across, up / 2)) * 1.1)
    else:
        radius = 1.0
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_zlim(ground, ground + 2 * radius)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))
    ax.set_box_aspect((1, 1, 1))
    grid = np.linspace(-radius, radius, 9)
    gx, gy = np.meshgrid(grid, grid)
    ax.plot_wireframe(gx, gy, np.full_like(gx, ground), color="0.7", linewidth=0.5)
    ax.set_xlabel("x (m)", fontsize=8, labelpad=-6)
    ax.set_ylabel("depth (m)", fontsize=8, labelpad=-6)
    ax.set_zlabel("up (m)", fontsize=8, labelpad=-6)
    ax.tick_params(labelsize=6, pad=-2)
    ax.set_title("3D lift (the view turns)", fontsize=9, y=0.97)


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
