"""Scene cut stage: PySceneDetect finds shots, ffmpeg cuts them frame-exactly.

Cutting re-encodes, because a stream copy starts at the previous keyframe and was measured here
to carry hidden frames of the previous GOP into the clip. All clips of a video are written by one
ffmpeg run (one decode, one encode) with the segment muxer, with keyframes forced at the cut
frames so each segment starts exactly there; ``-fps_mode passthrough`` keeps output frame n equal
to decoded frame n. Every kept clip's frame count is checked with ffprobe before it is kept.

A variable-frame-rate source (the probe's ``vfr``: phone recordings, screen captures) is first
resampled to constant frame rate at its average rate (the probe's fps), each output frame the
source frame on screen at that instant (:func:`cfr_command`): the clips, and the blurred clips
made from them at that same rate, then show frame n at n / fps seconds, as the clip table says.
Cut frame-exactly, a VFR source would keep its uneven timestamps in the private clip, which the
blur's constant-rate encode cannot carry (tests/stages/test_vfr.py measures the drift).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scenedetect import AdaptiveDetector, ContentDetector, detect

from vidmine.frames import FFMPEG, x264_args
from vidmine.ids import clip_id
from vidmine.io import PARTIAL_MARKER, atomic_path
from vidmine.probing import probe_video
from vidmine.runner import ItemResult, ShardStage, one_line

log = logging.getLogger(__name__)

Span = tuple[int, int]  # [start, end) in frames


def detect_shots(
    path: str | Path, detector: str, threshold: float | None, min_scene_len: int
) -> list[Span]:
    """Shot boundaries as frame spans; the whole video is one shot when no cut is found."""
    if detector == "adaptive":
        det = AdaptiveDetector(adaptive_threshold=threshold or 3.0, min_scene_len=min_scene_len)
    else:
        det = ContentDetector(threshold=threshold or 27.0, min_scene_len=min_scene_len)
    return [(start.frame_num, end.frame_num) for start, end in detect(str(path), det)]


def intersect(shots: list[Span], windows: list[Span]) -> list[Span]:
    """Parts of shots inside the source's own clip windows (HD-VILA spans, for example)."""
    parts = []
    for start, end in shots:
        for w_start, w_end in windows:
            lo, hi = max(start, w_start), min(end, w_end)
            if hi > lo:
                parts.append((lo, hi))
    return sorted(parts)


def split_long(span: Span, max_frames: int) -> list[Span]:
    """Split a span into equal parts no longer than ``max_frames``."""
    start, end = span
    parts = math.ceil((end - start) / max_frames)
    bounds = [start + round(i * (end - start) / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def plan_clips(
    shots: list[Span],
    n_frames: int,
    fps: float,
    min_seconds: float,
    max_seconds: float,
    windows: list[Span] | None = None,
) -> tuple[list[Span], list[tuple[Span, str]]]:
    """Kept clip spans and dropped spans with their reason. A source window (an HD-VILA span)
    that starts at or after the video's end is dropped with that reason, not as a short clip:
    the source's metadata and the video disagree."""
    shots = shots or [(0, n_frames)]
    kept, dropped = [], []
    if windows:
        beyond = [w for w in windows if w[0] >= n_frames]
        for w_start, w_end in beyond:
            reason = (
                f"source span {w_start / fps:.2f}-{w_end / fps:.2f}s starts after the video's"
                f" end ({n_frames / fps:.2f}s)"
            )
            dropped.append(((w_start, w_end), reason))
        shots = intersect(shots, [w for w in windows if w[0] < n_frames])
    max_frames = max(1, math.floor(max_seconds * fps))
    for span in shots:
        for part in split_long(span, max_frames):
            length = (part[1] - part[0]) / fps
            if length < min_seconds:
                dropped.append((part, f"shorter than {min_seconds:g}s ({length:.2f}s)"))
            else:
                kept.append(part)
    return kept, dropped


def cfr_command(src: Path, out: Path, fps: float, audio: bool) -> list[str]:
    """ffmpeg: a variable-rate video resampled to ``fps`` by the fps filter (output frame n is
    the source frame on screen at n / fps, or the one starting within half a frame after: its
    nearest rounding), near-lossless, audio kept. ``-fps_mode cfr -r`` was measured to shift
    frames by more than that, so it is not used."""
    command = [*FFMPEG, "-i", str(src), "-map", "0:v:0", "-vf", f"fps=fps={fps:.6f}:round=near"]
    command += ["-fps_mode", "passthrough"]  # the fps filter's output times, unchanged
    command += x264_args(12, "veryfast")
    command += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "192k"] if audio else ["-an"]
    return [*command, str(out)]


def cut_command(
    src: Path, pattern: Path, cuts: list[int], settings: dict[str, Any], audio: bool
) -> list[str]:
    """One ffmpeg call that writes a segment per interval between ``cuts``."""
    command = [*FFMPEG, "-i", str(src), "-map", "0:v:0", "-fps_mode", "passthrough"]
    command += x264_args(settings["crf"], settings["preset"])
    if audio:
        command += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k"]
    else:
        command += ["-an"]
    if cuts:
        keyframes = "+".join(f"eq(n,{c})" for c in cuts)
        command += [
            "-force_key_frames",
            f"expr:{keyframes}",
            "-f",
            "segment",
            "-segment_frames",
            ",".join(map(str, cuts)),
            "-reset_timestamps",
            "1",
            "-segment_format",
            "mp4",
            str(pattern),
        ]
    else:
        command += [str(pattern).replace("%04d", "0000")]
    return command


class SceneCutStage(ShardStage):
    """Find shots in each probed video and write its clips into the private zone."""

    name = "scenecut"

    def item_folder(self) -> Path:
        return self.layout.private_clips(self.shard)

    @contextmanager
    def _scratch(self, item: dict[str, Any]) -> Iterator[Path]:
        """A hidden folder beside the clips for an item's intermediate files, removed after;
        its partial marker lets the runner sweep it if the job is killed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        prefix = f".{item['id']}{PARTIAL_MARKER}{os.getpid()}-"
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.folder))
        try:
            yield workdir
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def process(self, item: dict[str, Any]) -> ItemResult:
        if not item.get("vfr"):
            return self._process(item, self.layout.root / item["video"])
        with self._scratch(item) as workdir:
            source = workdir / "cfr.mp4"
            audio = bool(item.get("has_audio")) and self.settings["keep_audio"]
            run = subprocess.run(
                cfr_command(self.layout.root / item["video"], source, float(item["fps"]), audio),
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                reason = one_line(run.stderr) or run.returncode
                return ItemResult.failed(f"ffmpeg could not resample the VFR video: {reason}")
            log.info("scenecut %s: VFR source resampled to %s fps", item["id"], item["fps"])
            return self._process({**item, "n_frames": probe_video(source)["n_frames"]}, source)

    def _process(self, item: dict[str, Any], source: Path) -> ItemResult:
        s = self.settings
        fps, n_frames = float(item["fps"]), int(item["n_frames"])
        try:
            shots = detect_shots(source, s["detector"], s["threshold"], s["min_scene_len"])
        except Exception as exc:  # PySceneDetect raises many types for undecodable input
            return ItemResult.failed(f"scene detection failed: {type(exc).__name__}: {exc}")
        windows = [(round(a * fps), round(b * fps)) for a, b in item.get("spans") or []]
        kept, dropped = plan_clips(
            shots, n_frames, fps, s["min_clip_seconds"], s["max_clip_seconds"], windows
        )
        fields = {
            "resampled_from_vfr": bool(item.get("vfr")),
            "shots": [list(x) for x in (shots or [(0, n_frames)])],
            "n_clips": len(kept),
            "dropped": [[a, b, why] for (a, b), why in dropped],
        }
        if not kept:
            beyond = [why for _, why in dropped if "after the video's end" in why]
            if beyond and len(beyond) == len(windows):
                return ItemResult.dropped(beyond[0], fields=fields)
            return ItemResult.dropped("no clip within the length bounds", fields=fields)
        try:
            rows = self._cut(item, source, kept, bool(item.get("has_audio")) and s["keep_audio"])
        except (RuntimeError, ValueError) as exc:
            return ItemResult.failed(str(exc), fields=fields)
        return ItemResult.ok([r["path"] for r in rows], fields=fields, rows=rows)

    def _cut(self, item: dict[str, Any], source: Path, kept: list[Span], audio: bool) -> list[dict]:
        cuts = sorted({b for span in kept for b in span} - {0, int(item["n_frames"])})
        boundaries = [0, *cuts]
        with self._scratch(item) as workdir:
            run = subprocess.run(
                cut_command(source, workdir / "seg%04d.mp4", cuts, self.settings, audio),
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                raise RuntimeError(f"ffmpeg cut failed: {one_line(run.stderr) or run.returncode}")
            return [
                self._keep(item, index, span, workdir / f"seg{boundaries.index(span[0]):04d}.mp4")
                for index, span in enumerate(kept)
            ]

    def _keep(self, item: dict[str, Any], index: int, span: Span, segment: Path) -> dict[str, Any]:
        facts = probe_video(segment)
        expected = span[1] - span[0]
        if facts["n_frames"] != expected:
            raise ValueError(f"clip {index} has {facts['n_frames']} frames, expected {expected}")
        cid = clip_id(item["id"], index)
        final = self.folder / f"{cid}.mp4"
        with atomic_path(final) as tmp:
            os.replace(segment, tmp)
        fps = float(item["fps"])
        return {
            "clip_id": cid,
            "video_id": item["id"],
            "shard": self.shard,
            "index": index,
            "start_frame": span[0],
            "end_frame": span[1],
            "n_frames": expected,
            "start_time": span[0] / fps,
            "end_time": span[1] / fps,
            "fps": fps,
            "width": facts["width"],
            "height": facts["height"],
            "has_audio": facts["has_audio"],
            "path": str(final.relative_to(self.layout.root)),
        }
