"""ffprobe (through ffmpeg-python): what the probe stage records about a download, and what the
scene cut checks each cut clip with.

``-count_packets`` makes ffprobe demux the whole file, which is what exposes a truncated
download whose index still claims every frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0/0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    return int(stream.get("tags", {}).get("rotate", 0)) % 360


def _ffprobe_error(exc: ffmpeg.Error) -> str:
    text = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
    return text[-1] if text else "ffprobe failed"


def probe_video(path: str | Path, vfr_tolerance: float = 0.02) -> dict[str, Any]:
    """ffprobe facts about a video; raises ``ValueError`` with a one-line reason if unusable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError("file missing")
    size = path.stat().st_size
    if size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        info = ffmpeg.probe(str(path), count_packets=None)
    except ffmpeg.Error as exc:
        raise ValueError(f"not a readable video: {_ffprobe_error(exc)}") from None
    streams = info.get("streams", [])
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["none"]
        raise ValueError(f"no video stream (streams: {', '.join(kinds)})")
    declared = int(video.get("nb_frames") or 0)
    readable = int(video.get("nb_read_packets") or 0)
    if declared and readable < declared:
        raise ValueError(f"truncated: container lists {declared} frames, only {readable} readable")
    avg, nominal = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
    fps = avg or nominal
    duration = float(video.get("duration") or info.get("format", {}).get("duration") or 0.0)
    return {
        "fps": fps,
        "nominal_fps": nominal,
        "n_frames": declared or readable,
        "width": int(video.get("width") or 0),
        "height": int(video.get("height") or 0),
        "codec": video.get("codec_name"),
        "pix_fmt": video.get("pix_fmt"),
        "rotation": _rotation(video),
        "duration": duration,
        "vfr": bool(avg and nominal and abs(avg - nominal) / nominal > vfr_tolerance),
        "has_audio": any(s.get("codec_type") == "audio" for s in streams),
        "bytes": size,
        "container": info.get("format", {}).get("format_name"),
    }
