"""Download stage: yt-dlp through its Python API, one video per item.

Failures are expected at scale (datasets lose videos over time), so every yt-dlp error becomes a
``failed`` row with yt-dlp's own reason. Transient errors (timeouts, connection resets, 5xx, 429)
are retried with exponential backoff; permanent ones (404, removed, private, unsupported) are not.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yt_dlp
from yt_dlp.utils import YoutubeDLError, download_range_func, parse_bytes

from vidmine.io import atomic_path, write_json_atomic
from vidmine.runner import ItemResult, ShardStage, one_line

log = logging.getLogger(__name__)

TRANSIENT = re.compile(
    r"timed out|timeout|temporar|connection (reset|aborted|refused)|remote end closed|"
    r"HTTP Error (5\d\d|429)|IncompleteRead|Errno 104",
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


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if k not in PRIVATE_INFO_KEYS}
    if isinstance(value, list):
        return [_strip_private(v) for v in value]
    return value


def clean_reason(error: Exception) -> str:
    """yt-dlp's message without its ``ERROR:`` prefix and colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).removeprefix("ERROR: ").strip()
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

        def backoff(attempt: int) -> float:
            return s["backoff_seconds"] * 2 ** max(attempt - 1, 0)

        options: dict[str, Any] = {
            "format": s["format"].format(h=s["max_height"]),
            "merge_output_format": "mp4",
            "outtmpl": {"default": str(workdir / "video.%(ext)s")},
            "writeinfojson": True,
            "noplaylist": True,
            "noprogress": True,
            "quiet": True,
            "logger": _YtdlpLog(),
            "socket_timeout": s["socket_timeout"],
            "retries": s["retries"],
            "fragment_retries": s["retries"],
            "extractor_retries": s["retries"],
            "retry_sleep_functions": {"http": backoff, "fragment": backoff, "extractor": backoff},
            "enable_file_urls": s["allow_file_urls"],
            "overwrites": True,
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

    def _attempt(self, item: dict[str, Any], workdir: Path) -> dict[str, Any]:
        with yt_dlp.YoutubeDL(self.ytdlp_options(workdir, item)) as ydl:
            info = ydl.extract_info(item["url"], download=True)
        return ydl.sanitize_info(info) if info else {}

    def process(self, item: dict[str, Any]) -> ItemResult:
        retries, backoff = self.settings["retries"], self.settings["backoff_seconds"]
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(retries + 1):
            workdir = Path(
                tempfile.mkdtemp(prefix=f".{item['id']}.partial-{os.getpid()}-", dir=self.folder)
            )
            try:
                info = self._attempt(item, workdir)
                return self._keep(item, workdir, info)
            except YoutubeDLError as exc:
                reason = clean_reason(exc)
                if attempt == retries or not TRANSIENT.search(reason):
                    return ItemResult.failed(reason)
                wait = backoff * 2**attempt
                log.warning(
                    "download %s: %s; retry %d/%d in %.1fs",
                    item["id"],
                    reason,
                    attempt + 1,
                    retries,
                    wait,
                )
                time.sleep(wait)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        raise AssertionError("unreachable")

    def _keep(self, item: dict[str, Any], workdir: Path, info: dict[str, Any]) -> ItemResult:
        """Move the finished download into place: info.json first, the video last."""
        videos = [
            p for p in workdir.iterdir() if p.suffix != ".json" and not p.name.endswith(".part")
        ]
        if not videos:
            return ItemResult.failed("yt-dlp finished but wrote no video file")
        video = max(videos, key=lambda p: p.stat().st_size)
        info_path = self.folder / f"{item['id']}.info.json"
        video_path = self.folder / f"{item['id']}{video.suffix}"
        write_json_atomic(info_path, _strip_private(info))
        with atomic_path(video_path) as tmp:
            os.replace(video, tmp)
        root = self.layout.root
        fields = {k: info.get(k) for k in INFO_KEYS_KEPT}
        fields["extractor_id"] = info.get("id")
        fields["bytes"] = video_path.stat().st_size
        return ItemResult.ok(
            [str(video_path.relative_to(root)), str(info_path.relative_to(root))], fields=fields
        )


def _has_span(item: dict[str, Any]) -> bool:
    start, end = item.get("start"), item.get("end")
    return start is not None and end is not None and start == start and end == end  # not NaN
