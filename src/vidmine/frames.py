"""Frame access shared by the stages that look at pixels: decode, sample, resize, write.

Decoding uses OpenCV (BGR frames). Writing pipes raw frames into ffmpeg, because OpenCV's own
writer cannot choose x264 settings or carry audio over.
"""

from __future__ import annotations

import fcntl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from vidmine.threads import thread_budget

# ffmpeg, quiet and non-interactive, overwriting its output (always a temporary name here).
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged pipe (/proc/sys/fs/pipe-max-size)


def widen_pipe(stream) -> None:
    """Let ffmpeg run a frame or two ahead of Python: a pipe holds 64 KiB by default, less than
    one 640x272 frame, so the decoder and encoder otherwise wait on every frame."""
    try:
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # a lower system limit: the default pipe still works
        pass


def x264_args(crf: int, preset: str) -> list[str]:
    """H.264 in yuv420p, the pixel format every player and decoder reads; x264 uses the job's
    thread budget (``vidmine.threads``) when there is one, not a thread per core it sees."""
    args = ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]
    if budget := thread_budget():
        args += ["-threads", str(budget)]
    return args


class DecodeError(ValueError):
    """A clip that cannot be opened or yields no frames."""


def open_capture(path: str | Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DecodeError(f"cannot open {Path(path).name} for decoding")
    return capture


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame in order; raises ``DecodeError`` if none can be read."""
    capture = open_capture(path)
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield frame
    finally:
        capture.release()
    if count == 0:
        raise DecodeError(f"no decodable frame in {Path(path).name}")


def pipe_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame in order, decoded by an ffmpeg process that runs ahead of the caller.

    For full passes over a clip (blur): decoding then overlaps with the caller's work on
    another core, and the pixels are the ones ffmpeg's own RGB conversion gives (as for the
    deface CLI, whose detections vidmine must reproduce).
    """
    import ffmpeg  # ffmpeg-python, for the probe

    command = [*FFMPEG, "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "bgr24"]
    command += ["-fps_mode", "passthrough", "pipe:1"]
    # The decoder starts before the probe that tells the frame size, so the two start-ups
    # (about 40 ms each here) overlap; the pipe holds the first frames until they are read.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    widen_pipe(process.stdout)
    count = 0
    try:
        try:
            probe = ffmpeg.probe(str(path))
            stream = next(s for s in probe["streams"] if s["codec_type"] == "video")
        except (ffmpeg.Error, StopIteration):
            raise DecodeError(f"cannot open {Path(path).name} for decoding") from None
        width, height = int(stream["width"]), int(stream["height"])
        size = width * height * 3
        while len(data := process.stdout.read(size)) == size:
            count += 1
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
    finally:
        process.kill()
        process.wait()
    if count == 0:
        raise DecodeError(f"no decodable frame in {Path(path).name}")


def sample_indices(n_frames: int, fps: float, sample_fps: float, max_seconds: float) -> list[int]:
    """Frame indices at ``sample_fps`` over the first ``max_seconds`` (TrackVerse: 2 fps, 8 s)."""
    if n_frames <= 0:
        return []
    last = min(n_frames, max(1, int(round(max_seconds * fps))))
    step = max(fps / sample_fps, 1.0)
    return sorted({min(int(round(i * step)), last - 1) for i in range(int(np.ceil(last / step)))})


def read_frames_at(
    path: str | Path, indices: list[int], with_next: bool = False
) -> dict[int, np.ndarray]:
    """Decode sequentially (seeking is not frame-exact for every codec) and keep ``indices``;
    with ``with_next`` also keep each index's following frame (for flow)."""
    wanted = set(indices) | ({i + 1 for i in indices} if with_next else set())
    kept: dict[int, np.ndarray] = {}
    last = max(wanted) if wanted else -1
    for index, frame in enumerate(iter_frames(path)):
        if index in wanted:
            kept[index] = frame
        if index >= last:
            break
    return kept


def shrink_to_width(frame: np.ndarray, width: int) -> np.ndarray:
    """Downscale wider frames to ``width`` so scores of large sources are comparable; smaller
    frames stay as they are, because upscaling invents smooth regions (and so fake flatness)."""
    h, w = frame.shape[:2]
    if w <= width:
        return frame
    return cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def fit_within(frame: np.ndarray, max_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return frame
    return cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


class VideoWriter:
    """Raw BGR frames in, an H.264 mp4 out (optionally with the audio of ``audio_from``)."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        crf: int = 18,
        preset: str = "veryfast",
        audio_from: Path | None = None,
    ):
        raw = ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}"]
        command = [*FFMPEG, *raw, "-r", f"{fps:.6f}", "-i", "pipe:0"]
        if audio_from is not None:
            command += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0?", "-c:a", "copy"]
        command += [*x264_args(crf, preset), "-fps_mode", "passthrough"]
        command += ["-movflags", "+faststart", str(path)]
        self.frames = 0
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        widen_pipe(self.process.stdin)

    def write(self, frame: np.ndarray) -> None:
        self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
        self.frames += 1

    def close(self) -> None:
        self.process.stdin.close()
        error = self.process.stderr.read().decode("utf-8", "replace")
        if self.process.wait() != 0:
            raise RuntimeError(f"ffmpeg encode failed: {error.strip()[-300:]}")

    def abort(self) -> None:
        self.process.kill()
        self.process.wait()
