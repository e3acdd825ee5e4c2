"""Download stage: yt-dlp through its Python API, one video per item.

Failures are expected at scale (datasets lose videos over time), so every yt-dlp error becomes a
``failed`` row with yt-dlp's own reason. Two layers of retries, both with the configured
exponential backoff:

- yt-dlp's own (``retries``, ``fragment_retries``, ``retry_sleep_functions``): a connection cut
  mid-file is resumed by yt-dlp from the byte it reached, inside one attempt;
- around the whole attempt, for transient errors yt-dlp raises (timeouts, resets, 5xx, 429 at
  extraction). A 429 or 503 with ``Retry-After`` waits what the server asks (up to
  ``max_retry_after``). Permanent errors (404, removed, private, unsupported) are not retried.

An item's partial download lives in ``.<id>.resume/`` (no partial marker, so the runner's sweep
keeps it): a rerun after a preemption or a transient failure resumes the ``.part`` file where it
stopped. Each item has a wall-clock ``deadline`` (``deadline_seconds`` plus
``deadline_per_video_minute`` per minute of the expected length), because ``socket_timeout``
only bounds one read: a server sending a byte every few seconds would hold the shard for days.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import yt_dlp
from yt_dlp.utils import YoutubeDLError, download_range_func, parse_bytes

from vidmine.frames import FFMPEG, x264_args
from vidmine.io import atomic_path, write_json_atomic
from vidmine.probing import probe_video
from vidmine.runner import ItemResult, ShardStage, one_line

log = logging.getLogger(__name__)

TRANSIENT = re.compile(
    r"timed out|timeout|temporar|connection (reset|aborted|refused)|remote end closed|"
    r"HTTP Error (5\d\d|429)|IncompleteRead|Errno 104|bytes read, \d+ more expected",
    re.IGNORECASE,
)
# Keys yt-dlp may copy into info.json that must not be kept next to the video.
PRIVATE_INFO_KEYS = {"cookies", "http_headers"}
INFO_KEYS_KEPT = ("title", "extractor", "webpage_url", "duration", "width", "height", "fps")


class _YtdlpLog:
    """Route yt-dlp's messages into our per-shard log instead of stdout."""

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug]"):
            log.debug(msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)


def kept_info(info: dict[str, Any]) -> dict[str, Any]:
    """The info.json kept beside the video: what yt-dlp itself writes with its private keys
    removed (``sanitize_info(remove_private_keys=True)``: the download's temporary paths and
    the ``requested_*`` lists), without ``epoch`` (the time of the download, the one value that
    differs between two identical runs) and without cookies or request headers."""
    info = yt_dlp.YoutubeDL.sanitize_info(dict(info), remove_private_keys=True)
    info.pop("epoch", None)
    return _strip_private(info)


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if k not in PRIVATE_INFO_KEYS}
    if isinstance(value, list):
        return [_strip_private(v) for v in value]
    return value


class DeadlinePassed(BaseException):
    """Raised by the item's alarm. A BaseException, so that no ``except Exception`` inside
    yt-dlp turns it into a retry."""


class Deadline:
    """A wall-clock budget that interrupts the block with ``DeadlinePassed`` (SIGALRM interrupts
    a blocking read too). ``budget`` may grow once the video's length is known. Only the main
    thread receives signals; elsewhere the block runs without a deadline."""

    def __init__(self, seconds: float):
        self.budget = seconds
        self.started = time.monotonic()
        self.armed = seconds > 0 and threading.current_thread() is threading.main_thread()

    def __enter__(self) -> Deadline:
        if self.armed:
            self.previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.budget)
        return self

    def __exit__(self, *exc) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)

    def _expire(self, signum, frame):
        raise DeadlinePassed()

    def extend_to(self, seconds: float) -> None:
        """Set the total budget (from the start) to ``seconds`` if that is longer."""
        if self.armed and seconds > self.budget:
            self.budget = seconds
            left = seconds - (time.monotonic() - self.started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def retry_after_seconds(error: BaseException) -> float | None:
    """The ``Retry-After`` seconds of the HTTP response behind a yt-dlp error, if any."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or getattr(exc, "headers", None)
        value = headers.get("Retry-After") if headers is not None else None
        if value is not None and str(value).strip().isdigit():
            return float(value)
        exc_info = getattr(exc, "exc_info", None)
        stack += [exc.__cause__, exc.__context__, exc_info[1] if exc_info else None]
    return None


def file_url_path(url: str) -> Path | None:
    """The local path of a ``file://`` URL (links resolved), None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        return Path("//" + parts.netloc + url2pathname(parts.path))  # a remote share: no root
    return Path(url2pathname(parts.path)).resolve()


def url_refusal(url: str, manifest_url: str, settings: dict[str, Any]) -> str | None:
    """Why ``url`` may not be fetched for a manifest row listing ``manifest_url``, or None.

    A file is read only when the manifest itself lists it as a file URL and it lies under
    ``file_url_roots``: a web page, a redirect or an embedded media URL never reaches a local
    file (a page could otherwise have a local file copied and released under its name)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme != "file":
        return f"refused: {scheme or 'no'} scheme (only http, https and allowed file URLs)"
    if file_url_path(manifest_url) is None:
        return "refused: a file URL reached through a web page or redirect"
    if not settings["allow_file_urls"]:
        return "refused: file:// URLs are disabled (download.allow_file_urls is false)"
    path = file_url_path(url)
    roots = [Path(root).resolve() for root in settings["file_url_roots"]]
    if not any(path.is_relative_to(root) for root in roots):
        return f"refused: {path} is outside download.file_url_roots"
    return None


# yt-dlp messages that do not say what happened in a user's terms, and what they mean.
PLAIN_REASONS = {
    "Did not get any data blocks": "the server sent an empty file (0 bytes)",
}


def clean_reason(error: Exception) -> str:
    """yt-dlp's message without its ``ERROR:`` prefix and colour codes (a cryptic one with
    its meaning in front)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).removeprefix("ERROR: ").strip()
    for cryptic, plain in PLAIN_REASONS.items():
        if cryptic in text:
            text = f"{plain} (yt-dlp: {text})"
    return one_line(text)


class DownloadStage(ShardStage):
    """Download each manifest row's URL into the private zone with its ``info.json``."""

    name = "download"

    def item_folder(self) -> Path:
        return self.layout.private_videos(self.shard)

    def result_settings(self) -> dict[str, Any]:
        keys = ("max_height", "format", "use_time_span")
        return {k: self.settings[k] for k in keys}

    def ytdlp_options(self, workdir: Path, item: dict[str, Any]) -> dict[str, Any]:
        s = self.settings

        def backoff(n: int) -> float:
            # yt-dlp calls ``sleep_func(n=retry_number)``, counting from 0.
            return s["backoff_seconds"] * 2**n

        options: dict[str, Any] = {
            "format": s["format"].format(h=s["max_height"]),
            "merge_output_format": "mp4",
            "outtmpl": {"default": str(workdir / "video.%(ext)s")},
            "writeinfojson": True,
            "noplaylist": True,
            "noprogress": True,
            "quiet": True,
            "logger": _YtdlpLog(),
            "progress_hooks": [self._on_progress],
            "socket_timeout": s["socket_timeout"],
            "retries": s["retries"],
            "fragment_retries": s["retries"],
            "extractor_retries": s["retries"],
            "retry_sleep_functions": {"http": backoff, "fragment": backoff, "extractor": backoff},
            # file URLs only for a manifest row that is one (checked in process); whatever
            # yt-dlp is about to fetch is checked again by the match filter
            "enable_file_urls": file_url_path(item["url"]) is not None,
            "match_filter": lambda info, incomplete=False: self._refuse_media(info, item),
            "continuedl": True,  # resume a .part file left by an earlier attempt or run
            "cachedir": False,
            "updatetime": False,  # file mtimes say when we downloaded, not the server's date
        }
        if s["rate_limit"]:
            options["ratelimit"] = parse_bytes(str(s["rate_limit"]))
        if s["sleep_between"]:
            options["sleep_interval"] = s["sleep_between"]
        if s["cookies"]:
            options["cookiefile"] = s["cookies"]
        if s["use_time_span"] and _has_span(item):
            options["download_ranges"] = download_range_func(None, [(item["start"], item["end"])])
            options["force_keyframes_at_cuts"] = True
        return options

    def _refuse_media(self, info: dict[str, Any], item: dict[str, Any]) -> str | None:
        """yt-dlp's match filter: the reason to skip when a media URL it found is refused."""
        formats = info.get("requested_formats") or [info]
        for url in (f.get("url") for f in formats):
            if url and (reason := url_refusal(url, item["url"], self.settings)):
                self.refused = f"{reason} (media URL {url})"
                return self.refused
        return None

    def _attempt(self, item: dict[str, Any], workdir: Path) -> dict[str, Any]:
        self.refused = None
        with yt_dlp.YoutubeDL(self.ytdlp_options(workdir, item)) as ydl:
            info = ydl.extract_info(item["url"], download=True)
        return ydl.sanitize_info(info) if info else {}

    def deadline_seconds(self, minutes: float | None) -> float:
        """An item's wall-clock budget: a base, plus a share per expected minute of video."""
        s = self.settings
        if not s["deadline_seconds"]:
            return 0.0
        return s["deadline_seconds"] + s["deadline_per_video_minute"] * max(minutes or 0.0, 0.0)

    def process(self, item: dict[str, Any]) -> ItemResult:
        if reason := url_refusal(item["url"], item["url"], self.settings):
            return ItemResult.failed(reason)
        minutes = (item["end"] - item["start"]) / 60 if _has_span(item) else None
        self.folder.mkdir(parents=True, exist_ok=True)
        workdir = self.folder / f".{item['id']}.resume"
        self.deadline = Deadline(self.deadline_seconds(minutes))
        try:
            with self.deadline:
                result = self._with_retries(item, workdir)
        except DeadlinePassed:
            kept = any(workdir.glob("*.part"))
            result = ItemResult.failed(
                f"deadline of {self.deadline.budget:.0f} s passed before the download finished"
                + (" (partial file kept for a rerun to resume)" if kept else "")
            )
        resumable = result.status != "ok" and (
            TRANSIENT.search(result.reason) or result.reason.startswith("deadline")
        )
        if not resumable:
            shutil.rmtree(workdir, ignore_errors=True)
        return result

    def _on_progress(self, status: dict[str, Any]) -> None:
        """yt-dlp progress hook: once the video's length is known, the deadline grows to it."""
        duration = (status.get("info_dict") or {}).get("duration")
        if duration and getattr(self, "deadline", None) is not None:
            self.deadline.extend_to(self.deadline_seconds(float(duration) / 60))

    def _with_retries(self, item: dict[str, Any], workdir: Path) -> ItemResult:
        retries, backoff = self.settings["retries"], self.settings["backoff_seconds"]
        for attempt in range(retries + 1):
            workdir.mkdir(exist_ok=True)
            try:
                info = self._attempt(item, workdir)
                if self.refused:
                    return ItemResult.failed(self.refused)
                return self._keep(item, workdir, info)
            except YoutubeDLError as exc:
                reason = clean_reason(exc)
                if "file:" in reason and file_url_path(item["url"]) is None:
                    # yt-dlp's handlers refuse the redirect; say why in the user's terms
                    return ItemResult.failed(f"refused: a redirect to a file URL ({reason})")
                if attempt == retries or not TRANSIENT.search(reason):
                    return ItemResult.failed(reason)
                wait = backoff * 2**attempt
                asked = retry_after_seconds(exc)
                if asked is not None:
                    wait = max(wait, min(asked, self.settings["max_retry_after"]))
                log.warning(
                    "download %s: %s; retry %d/%d in %.1fs",
                    item["id"],
                    reason,
                    attempt + 1,
                    retries,
                    wait,
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _fit_height(self, video: Path) -> int | None:
        """A direct file (no formats to choose from: yt-dlp's ``height<=?`` lets it through) taller
        than ``max_height`` is scaled down to it here; returns the height it had, else None.
        A file ffprobe cannot read is left for the probe stage to name."""
        try:
            facts = probe_video(video)
        except ValueError:
            return None
        height, limit = display_height(facts), self.settings["max_height"]
        if height <= limit:
            return None
        scaled = video.with_name(f"scaled{video.suffix}")
        command = [*FFMPEG, "-i", str(video), "-map", "0:v:0", "-map", "0:a?", "-vf"]
        command += [f"scale=-2:{limit}", *x264_args(18, "veryfast"), "-c:a", "copy", str(scaled)]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            raise YoutubeDLError(
                f"could not scale the {height}p file to {limit}p: {run.stderr[-200:]}"
            )
        os.replace(scaled, video)
        log.info("download %s: a %dp file scaled down to %dp (max_height)", video, height, limit)
        return height

    def _keep(self, item: dict[str, Any], workdir: Path, info: dict[str, Any]) -> ItemResult:
        """Move the finished download into place: info.json first, the video last."""
        videos = [
            p for p in workdir.iterdir() if p.suffix != ".json" and not p.name.endswith(".part")
        ]
        if not videos:
            return ItemResult.failed("yt-dlp finished but wrote no video file")
        video = max(videos, key=lambda p: p.stat().st_size)
        downscaled_from = self._fit_height(video)
        info_path = self.folder / f"{item['id']}.info.json"
        video_path = self.folder / f"{item['id']}{video.suffix}"
        write_json_atomic(info_path, kept_info(info))
        with atomic_path(video_path) as tmp:
            os.replace(video, tmp)
        root = self.layout.root
        fields = {k: info.get(k) for k in INFO_KEYS_KEPT}
        fields["extractor_id"] = info.get("id")
        fields["bytes"] = video_path.stat().st_size
        fields["downscaled_from"] = downscaled_from
        return ItemResult.ok(
            [str(video_path.relative_to(root)), str(info_path.relative_to(root))], fields=fields
        )


def display_height(facts: dict[str, Any]) -> int:
    """The height a player shows: a video rotated by 90 or 270 degrees stands on its side."""
    return facts["width"] if facts["rotation"] % 180 == 90 else facts["height"]


def _has_span(item: dict[str, Any]) -> bool:
    start, end = item.get("start"), item.get("end")
    return start is not None and end is not None and start == start and end == end  # not NaN
