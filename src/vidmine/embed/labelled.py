"""Labelled 2D tracks for the downstream evaluation (issue 19, part 3), and labels from a table.

VPD judges an embedding by few-shot action recognition and retrieval on labelled sports clips.
vidmine ships no labelled footage, so the synthetic motions of :mod:`vidmine.lifter.synthetic`
stand in: each track is one subject doing one of the sixteen actions, filmed by one random
camera, as COCO-17 pixel keypoints with confidences, like a detector's output. Because the
subjects are Human3.6M's names, the same subject split (train S1, S5, S6, S7, S8; test S9, S11)
holds the test people out of the few-shot training set. Every track is seeded from its own
(seed, subject, action, take, camera), so adding cameras or actions leaves the others unchanged.

Real labels (a manifest with labels, a Kinetics import) arrive as a table ``track_id -> label``
(:func:`read_label_table`) and are matched to a features folder by :func:`labels_for_folder`.

The tracks are written as VPD pose folders (:func:`write_labelled_pose_folders`), which the
teacher can be applied to, and as the raw-2D baseline features (:func:`baseline_features`),
VPD's ``dummy_2d_features.py``: the numbers the learnt embeddings must beat. They have no
pixels, so for the student they are also drawn as VPD crop folders
(:func:`write_labelled_crop_folders`): a stick figure of each pose on a noise background, with
the previous frame, a mask and the limbs' motion as a flow PNG, so the student can be trained
and measured on the same labelled tracks as the teacher.
"""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vidmine.embed.pose2d import raw_2d_features
from vidmine.formats import FormatError, error_line
from vidmine.formats.vpd import (
    FEATURES_SUFFIX,
    KEYPOINTS_FILE,
    VpdFeature,
    VpdPose,
    crop_file_names,
    encode_flow_png,
    features_path,
    read_vpd_keypoints,
    write_vpd_features,
    write_vpd_pose,
)
from vidmine.lifter.camera import world_to_camera
from vidmine.lifter.synthetic import (
    ACTIONS,
    SUBJECTS,
    SyntheticConfig,
    animate,
    coco_points_3d,
    detector_noise,
    project_pixels,
    random_camera,
    subject_bones,
)

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
DROPPED_JOINT_SCORE = 0.05  # a detector still places a joint it cannot see, with a low score
DETECTION_SCORE = 0.95


@dataclass(frozen=True)
class LabelledTrack:
    """One labelled 2D track: ``keypoints`` (T, 17, 3) pixel x, y and confidence in [0, 1]."""

    track_id: str
    label: str
    subject: str
    camera: int
    keypoints: np.ndarray
    fps: float


@dataclass(frozen=True)
class LabelledTrackConfig:
    """How many synthetic tracks, and how long: the defaults (7 subjects x 16 actions, 50
    frames at 25 fps, one camera) evaluate a feature set in seconds on one core.

    With one take the five training subjects give five sequences per class, so 5-shot equals
    all-shot; ``takes=2`` (10 per class) separates them, at four times the DTW work.
    """

    subjects: tuple[str, ...] = SUBJECTS
    actions: tuple[str, ...] = ACTIONS
    takes: int = 1
    cameras: int = 1
    frames: int = 50
    fps: float = 25.0
    noise_px: float = 2.0
    resolution: tuple[int, int] = (1000, 1000)
    seed: int = 0


def _track_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _fill_dropped(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dropped joints (NaN) interpolated in time, and a mask of them: a top-down detector
    always returns all 17 joints, guessing the unseen ones, so VPD's poses never have holes."""
    filled = pixels.copy()
    dropped = ~np.isfinite(pixels).all(axis=-1)
    frames = np.arange(len(pixels))
    for joint in range(pixels.shape[1]):
        seen = ~dropped[:, joint]
        for axis in range(2):
            filled[:, joint, axis] = np.interp(frames, frames[seen], pixels[seen, joint, axis])
    return filled, dropped


def _one_track(
    cfg: LabelledTrackConfig, subject: int, action: int, take: int, camera: int, bones: np.ndarray
) -> np.ndarray:
    """(T, 17, 3) noisy pixel keypoints with confidences of one take seen by one camera."""
    motion_rng = _track_rng(cfg.seed, subject, action, take)
    world, neck = animate(cfg.actions[action], bones, cfg.frames, cfg.fps, motion_rng)
    view_rng = _track_rng(cfg.seed, subject, action, take, 1000 + camera)
    cam = random_camera(view_rng, cfg.resolution)
    markers = world_to_camera(coco_points_3d(world, neck), cam["orientation"], cam["translation"])
    noise = SyntheticConfig(noise_px=cfg.noise_px)
    pixels, dropped = _fill_dropped(detector_noise(project_pixels(markers, cam), noise, view_rng))
    scores = np.clip(view_rng.normal(0.9, 0.05, dropped.shape), 0.5, 1.0)
    scores[dropped] = DROPPED_JOINT_SCORE
    return np.concatenate([pixels, scores[..., None]], axis=-1).astype(np.float32)


def track_name(subject: str, action: str, take: int, camera: int) -> str:
    """``S9_Walk_t0_c1``: a file-name-safe video name (it names pose folders and pickles)."""
    return f"{subject}_{action}_t{take}_c{camera}"


def synthetic_labelled_tracks(
    cfg: LabelledTrackConfig = LabelledTrackConfig(),
) -> list[LabelledTrack]:
    """Every (subject, action, take, camera) of ``cfg`` as a labelled 2D track; the same
    ``cfg`` always gives the same tracks."""
    unknown = sorted(set(cfg.actions) - set(ACTIONS))
    if unknown:
        raise ValueError(f"labelled tracks: unknown actions {unknown}; known: {list(ACTIONS)}")
    tracks = []
    combos = [(s, a) for s in range(len(cfg.subjects)) for a in range(len(cfg.actions))]
    bones = {s: subject_bones(_track_rng(cfg.seed, s)) for s in range(len(cfg.subjects))}
    for s, a in tqdm(combos, desc="labelled tracks", leave=False, disable=None):
        for take in range(cfg.takes):
            for camera in range(cfg.cameras):
                subject, action = cfg.subjects[s], cfg.actions[a]
                tracks.append(
                    LabelledTrack(
                        track_id=track_name(subject, action, take, camera),
                        label=action,
                        subject=subject,
                        camera=camera,
                        keypoints=_one_track(cfg, s, a, take, camera, bones[s]),
                        fps=cfg.fps,
                    )
                )
    return tracks


def subject_split(
    tracks: Iterable[LabelledTrack], test_subjects: Sequence[str] = TEST_SUBJECTS
) -> dict[str, str]:
    """track_id -> 'train' or 'test' by subject, so no test person is seen in training."""
    return {t.track_id: "test" if t.subject in test_subjects else "train" for t in tracks}


def _box(keypoints: np.ndarray) -> tuple[float, float, float, float]:
    """The pose's bounding box (x, y, w, h), 10 % larger on each side, like a person box."""
    lo, hi = keypoints[:, :2].min(axis=0), keypoints[:, :2].max(axis=0)
    margin = 0.1 * (hi - lo)
    lo, hi = lo - margin, hi + margin
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def write_labelled_pose_folders(
    out_dir: str | os.PathLike, tracks: Iterable[LabelledTrack]
) -> list[Path]:
    """VPD pose folders ``out_dir/<track_id>/`` (boxes and one pose per frame, no masks), so
    the teacher's apply step can embed the labelled tracks like any exported dataset."""
    folders = []
    for track in tqdm(list(tracks), desc="pose folders", leave=False, disable=None):
        boxes, poses = {}, {}
        for frame, kp in enumerate(track.keypoints):
            boxes[frame] = _box(kp)
            poses[frame] = [VpdPose(DETECTION_SCORE, boxes[frame], kp)]
        folder = Path(out_dir) / track.track_id
        write_vpd_pose(folder, boxes, poses)
        folders.append(folder)
    return folders


def baseline_features(tracks: Iterable[LabelledTrack], out_dir: str | os.PathLike) -> list[Path]:
    """The raw-2D baseline as VPD feature pickles ``out_dir/<track_id>.emb.pkl``: per frame
    the normalised (x, y) of 13 joints, plain and flipped (2, 26), meta ``{'is_2d': True,
    'kp_score': mean confidence}``, as VPD's ``dummy_2d_features.py`` writes them."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for track in tqdm(list(tracks), desc="raw 2D features", leave=False, disable=None):
        frames = np.arange(len(track.keypoints))
        paths.append(_write_baseline(out_dir, track.track_id, frames, track.keypoints))
    return paths


def _write_baseline(
    out_dir: str | os.PathLike, video: str, frames: np.ndarray, keypoints: np.ndarray
) -> Path:
    embeddings = raw_2d_features(keypoints)
    scores = keypoints[:, :, 2].mean(axis=1)
    features = [
        VpdFeature(int(frame), emb, {"is_2d": True, "kp_score": float(score)})
        for frame, emb, score in zip(frames, embeddings, scores, strict=True)
    ]
    path = features_path(out_dir, video)
    write_vpd_features(path, features)
    return path


def baseline_features_from_pose_folders(
    pose_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> list[Path]:
    """The raw-2D baseline of every VPD pose folder ``pose_dir/<video>/`` (an exported
    dataset, or :func:`write_labelled_pose_folders`' output), from the first pose listed in
    each frame, as ``dummy_2d_features.py`` does; a folder without ``coco_keypoints.json.gz``
    or with no pose is an error naming it, not a silently missing track."""
    folders = sorted(p for p in Path(pose_dir).iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"{pose_dir}: no pose folders")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for folder in tqdm(folders, desc="raw 2D features", leave=False, disable=None):
        if not (folder / KEYPOINTS_FILE).is_file():
            raise FormatError(f"{folder}: no {KEYPOINTS_FILE}")
        poses = {f: p for f, p in read_vpd_keypoints(folder).items() if p}
        if not poses:
            raise FormatError(f"{folder / KEYPOINTS_FILE}: no poses")
        frames = np.array(sorted(poses))
        keypoints = np.stack([poses[f][0].keypoints for f in frames])
        paths.append(_write_baseline(out_dir, folder.name, frames, keypoints))
    return paths


# ------------------------------------------------------------------ stick-figure crops

# COCO-17 bones drawn as the stick figure: shoulders to nose, arms, torso, hips, legs.
STICK_LIMBS = ((0, 5), (0, 6), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
               (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))  # fmt: skip
STICK_COLOUR = (230, 230, 230)
BACKGROUND_MAX = 90  # background noise in [0, 90): the figure stands out, but not trivially


def crop_square(pose: np.ndarray) -> tuple[np.ndarray, float]:
    """VPD's crop square around a (17, 2) pose: the box's longer side with 10 % padding on each
    side, centred on the box; returns its top-left corner and side in pixels."""
    lo, hi = pose.min(axis=0), pose.max(axis=0)
    side = max(float(np.max(hi - lo)), 1e-6)
    return (lo + hi) / 2 - side * 0.6, side * 1.2


def _line_width(size: int) -> int:
    """Limb width in pixels: 2 at 32 px crops (VPD's smallest useful size), scaled with it."""
    return max(1, round(2 * size / 32))


def _draw_stick_figure(
    pose: np.ndarray, origin: np.ndarray, side: float, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pose drawn into the crop square: image, mask (lines a pixel wider) and the joints'
    crop pixels."""
    import cv2

    size = background.shape[0]
    thickness = _line_width(size)
    image = background.copy()
    mask = np.zeros((size, size), np.uint8)
    pts = ((pose - origin) * size / side).round().astype(int)
    for a, b in STICK_LIMBS:
        cv2.line(image, tuple(pts[a]), tuple(pts[b]), STICK_COLOUR, thickness)
        cv2.line(mask, tuple(pts[a]), tuple(pts[b]), 255, thickness + 1)
    return image, mask, pts


def write_stick_figure_crops(folder: Path, poses: np.ndarray, background: np.ndarray) -> Path:
    """One VPD crop folder of a track of (T, 17, 2) pixel poses: ``<f>.png``, ``.prev.png``,
    ``.mask.png`` and ``.flow.png`` for every frame, each ``background``'s size (square).

    As VPD cuts crops, frame f and its previous frame are both cut with frame f's square, so
    the figure's motion between them stays visible; the flow is each limb's mean joint
    displacement in crop pixels, drawn along the limb (zero elsewhere), encoded as VPD's RAFT
    step writes it.
    """
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    size = background.shape[0]
    thickness = _line_width(size)
    for t, pose in enumerate(poses):
        names = crop_file_names(t)
        origin, side = crop_square(pose)
        image, mask, pts = _draw_stick_figure(pose, origin, side, background)
        prev, _, prev_pts = _draw_stick_figure(poses[max(t - 1, 0)], origin, side, background)
        flow = np.zeros((size, size, 2), np.float32)
        for a, b in STICK_LIMBS:
            move = ((pts[a] - prev_pts[a]) + (pts[b] - prev_pts[b])) / 2
            cv2.line(flow, tuple(pts[a]), tuple(pts[b]), tuple(float(v) for v in move), thickness)
        for name, img in ((names["rgb"], image), (names["prev"], prev), (names["mask"], mask)):
            cv2.imwrite(str(folder / name), img)
        cv2.imwrite(str(folder / names["flow"]), encode_flow_png(flow))
    return folder


def write_labelled_crop_folders(
    out_dir: str | os.PathLike, tracks: Iterable[LabelledTrack], size: int = 32, seed: int = 0
) -> list[Path]:
    """VPD crop folders ``out_dir/<track_id>/`` of the labelled tracks drawn as stick figures
    (:func:`write_stick_figure_crops`), so the student has pixels to learn from.

    Each track's background noise is seeded by (``seed``, its id), so a track's crops do not
    depend on which other tracks are written, and the same call writes the same files.
    """
    folders = []
    for track in tqdm(list(tracks), desc="crop folders", leave=False, disable=None):
        rng = np.random.default_rng([seed, zlib.crc32(track.track_id.encode())])
        background = rng.integers(0, BACKGROUND_MAX, (size, size, 3), dtype=np.uint8)
        folder = Path(out_dir) / track.track_id
        folders.append(write_stick_figure_crops(folder, track.keypoints[..., :2], background))
    return folders


# ------------------------------------------------------------------ labels from a table

LABEL_COLUMNS = ("track_id", "label")


def write_label_table(path: str | os.PathLike, tracks: Iterable[LabelledTrack]) -> Path:
    """CSV ``track_id, label, subject, camera, split`` of the tracks (split by subject): the
    table :func:`read_label_table` reads, as a manifest with labels would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tracks = list(tracks)
    split = subject_split(tracks)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*LABEL_COLUMNS, "subject", "camera", "split"])
        for t in tracks:
            writer.writerow([t.track_id, t.label, t.subject, t.camera, split[t.track_id]])
    return path


@dataclass(frozen=True)
class LabelTable:
    """Labels (track_id -> label) and, when the table has a ``split`` column, the split
    (track_id -> 'train' / 'test')."""

    labels: dict[str, str]
    split: dict[str, str] | None


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """A parquet or CSV table with ``track_id`` and ``label`` columns (optional ``split`` of
    'train' / 'test'); rows without a label are left out. Errors are one line naming the
    file."""
    path = Path(path)
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: not a readable label table ({error_line(err)})") from None
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise FormatError(
            f"{path}: label table lacks columns {missing} (has {list(table.columns)})"
        )
    table = table[table["label"].notna()]
    ids = table["track_id"].astype(str)
    if ids.duplicated().any():
        raise FormatError(f"{path}: track {ids[ids.duplicated()].iloc[0]!r} is labelled twice")
    labels = dict(zip(ids, table["label"].astype(str), strict=True))
    split = None
    if "split" in table.columns:
        split = dict(zip(ids, table["split"].astype(str), strict=True))
        bad = sorted({s for s in split.values() if s not in ("train", "test")})
        if bad:
            raise FormatError(f"{path}: split values {bad}; only 'train' and 'test' are known")
    return LabelTable(labels, split)


def folder_videos(folder: str | os.PathLike) -> list[str]:
    """The videos of a features folder: the names of its ``<video>.emb.pkl`` files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: features folder not found")
    names = (p.name for p in folder.iterdir() if p.name.endswith(FEATURES_SUFFIX))
    return sorted(name[: -len(FEATURES_SUFFIX)] for name in names)


def labels_for_folder(
    labels: Mapping[str, str], folder: str | os.PathLike, allow_missing: bool = False
) -> tuple[dict[str, str], int]:
    """The labels of the tracks a features folder has, and how many of its tracks have none
    (they are left out of the evaluation, not guessed).

    A label naming a track the folder lacks usually means the wrong folder or a failed apply
    step, so it is an error naming that track; ``allow_missing`` accepts it (a manifest may
    label tracks the release filtered out).
    """
    videos = folder_videos(folder)
    present = set(videos)
    absent = sorted(set(labels) - present)
    if absent and not allow_missing:
        raise FormatError(
            f"{folder}: no {absent[0]}{FEATURES_SUFFIX} for labelled track {absent[0]!r} "
            f"({len(absent)} labelled tracks missing)"
        )
    kept = {v: str(labels[v]) for v in videos if v in labels}
    return kept, len(videos) - len(kept)
