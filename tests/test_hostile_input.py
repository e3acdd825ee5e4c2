"""Hostile and broken input, through the whole workflow, in one dataset mixed with good videos.

The corpus is built here (nothing downloaded): media made with ffmpeg from the demo videos and
served by the tests' HTTP server on 127.0.0.1, hostile ids, malformed rows and URLs that try to
reach local files. Every bad input must end as one row with a one-line reason a user can act
on; every good video must pass download, probe and scene cut and fail no later stage; no file
may appear outside results/, and no command hidden in an id may run.
(Malicious pickles and npz files for every reader are in tests/test_no_code_from_data.py.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, VideoServer, ffmpeg
from vidmine.runner import read_status

pytestmark = pytest.mark.slow
MARKER = Path("/tmp") / f"vidmine-pwned-{uuid.uuid4().hex}"


def build_media(folder: Path, carphone: Path) -> dict[str, Path]:
    """The media files, each named for what is wrong (or special) with it."""
    folder.mkdir(parents=True, exist_ok=True)
    two_s = ["-i", str(carphone), "-t", "2"]
    files = {name: folder / f"{name}{ext}" for name, ext in [
        ("short", ".mp4"), ("vfr", ".mp4"), ("rotated", ".mp4"), ("vp9", ".webm"),
        ("mjpeg", ".avi"), ("grey", ".mp4"), ("yuv444", ".mp4"), ("uhd", ".mp4"),
        ("zero", ".mp4"), ("text", ".mp4"), ("truncated", ".mp4"), ("nomoov", ".mp4"),
        ("audio", ".mp4"), ("oneframe", ".mp4"),
    ]}  # fmt: skip
    ffmpeg(*two_s, "-c:v", "libx264", "-an", str(files["short"]))
    ffmpeg(*two_s, "-vf", "setpts='if(lt(N,20),N,20+(N-20)*2)/(30*TB)'",
           "-fps_mode", "passthrough", "-c:v", "libx264", str(files["vfr"]))  # fmt: skip
    ffmpeg("-i", str(files["short"]), "-c", "copy", "-metadata:s:v", "rotate=90",
           str(files["rotated"]))  # fmt: skip
    ffmpeg(*two_s, "-c:v", "libvpx-vp9", "-b:v", "300k", str(files["vp9"]))
    ffmpeg(*two_s, "-c:v", "mjpeg", "-q:v", "3", str(files["mjpeg"]))
    ffmpeg(*two_s, "-vf", "format=gray", "-c:v", "libx264", str(files["grey"]))
    ffmpeg(*two_s, "-c:v", "libx264", "-pix_fmt", "yuv444p", str(files["yuv444"]))
    ffmpeg(*two_s, "-vf", "scale=3840:2160", "-c:v", "libx264", "-preset", "ultrafast",
           str(files["uhd"]))  # fmt: skip
    files["zero"].write_bytes(b"")
    files["text"].write_text("this is not a video\n")
    whole = files["short"].read_bytes()
    files["truncated"].write_bytes(whole[: len(whole) // 3])
    ffmpeg(*two_s, "-c:v", "libx264", "-movflags", "+faststart", str(files["nomoov"]))
    files["nomoov"].write_bytes(files["nomoov"].read_bytes()[2000:])  # the moov atom is gone
    ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", str(files["audio"]))
    ffmpeg("-i", str(carphone), "-frames:v", "1", "-c:v", "libx264", str(files["oneframe"]))
    return files


def corpus(server: str, root: Path, outside: Path) -> tuple[str, dict[str, tuple]]:
    """The URL list (CSV) and, per raw id, what must happen: (stage, status, reason pattern);
    "good" ids must pass download, probe and scene cut. Rejected rows are checked apart."""
    good = lambda name: f"{server}/video/{name}.mp4"  # noqa: E731
    expect: dict[str, tuple] = {}
    rows = []

    def add(raw_id: str, url: str, outcome: tuple) -> None:
        rows.append((raw_id, url))
        expect[raw_id] = outcome

    ok = ("good",)
    for name in ("short", "vfr", "rotated", "grey", "yuv444", "uhd"):
        add(name, good(name), ok)
    add("vp9", f"{server}/video/vp9.webm", ok)
    add("mjpeg", f"{server}/video/mjpeg.avi", ok)
    add("cut-mid-body", f"{server}/cut/short.mp4", ok)  # retried by yt-dlp, then complete
    # hostile ids on good videos: the shell, the file system and the report must not care
    for raw_id in ("../../escape", f"a;touch {MARKER}", "it's \"quoted\"", f"$(touch {MARKER})",
                   f"`touch {MARKER}`", "with  spaces", "ünïcødé 視頻", "-rf"):  # fmt: skip
        add(raw_id, good("short"), ok)
    rows.append(("short", f"{server}/video/rotated.mp4"))  # a repeated id: renamed, processed
    add("http-404", f"{server}/missing.mp4", ("download", "failed", r"404"))
    add("http-500", f"{server}/error/500.mp4", ("download", "failed", r"500"))
    add("stall", f"{server}/stall.mp4", ("download", "failed", r"(?i)timed out"))
    add("drip", f"{server}/drip/short.mp4", ("download", "failed", r"^deadline of \d+ s passed"))
    add("html-page", f"{server}/page.html", ("download", "failed", r"Unsupported URL"))
    add("page-embeds-file", f"{server}/embed/short.html", ("download", "failed", r"^refused"))
    add("redirect-to-file", f"{server}/to-file/short.mp4", ("download", "failed", r"^refused"))
    add("file-outside", (outside / "secret.mp4").as_uri(),
        ("download", "failed", r"outside download.file_url_roots"))  # fmt: skip
    add("symlink-out", (root / "link.mp4").absolute().as_uri(),
        ("download", "failed", r"outside download.file_url_roots"))  # fmt: skip
    add("zero-byte", good("zero"), ("download|probe", "failed", r"(?i)empty|0 bytes"))
    add("text-as-mp4", good("text"), ("probe", "failed", r"not a readable video"))
    add("truncated", good("truncated"), ("probe", "failed", r"not a readable video|truncated"))
    add("moov-missing", good("nomoov"), ("probe", "failed", r"not a readable video"))
    add("audio-only", good("audio"), ("probe", "failed", r"no video stream"))
    add("one-frame", good("oneframe"), ("probe", "failed", r"frame"))
    lines = ["id,url,caption", *(f'"{i.replace(chr(34), chr(34) * 2)}",{u},x' for i, u in rows)]
    lines += [
        "ftp-scheme,ftp://127.0.0.1/video.mp4,x",  # line numbers checked below
        "no-url,,x",
        '"unclosed,https://a.example/v.mp4,x',
        "short-row,https://a.example/w.mp4",
        "script,javascript:alert(1),x",
    ]
    return "\n".join(lines) + "\n", expect


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--profile", str(REPO / "profiles" / "local"), *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def files_outside_results(workdir: Path) -> set[Path]:
    skip = ("results", ".snakemake")
    return {
        p.relative_to(workdir)
        for p in workdir.rglob("*")
        if p.is_file() and p.relative_to(workdir).parts[0] not in skip
    }


def test_every_bad_input_gets_one_reason_and_every_good_video_goes_through(
    tmp_path, http_server, demo_videos
):
    work, root, outside = tmp_path / "work", tmp_path / "work" / "media", tmp_path / "outside"
    media = build_media(root, demo_videos["carphone"])
    outside.mkdir()
    shutil.copy(media["short"], outside / "secret.mp4")
    (root / "link.mp4").symlink_to(outside / "secret.mp4")
    VideoServer.files.update({name: path for name, path in media.items()})
    text, expect = corpus(http_server, root, outside)
    (work / "list.csv").write_text(text)
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(
        "datasets:\n  mixed:\n"
        "    source: {type: urls, path: list.csv, id_column: id, caption_column: caption}\n"
        "    shard_size: 6\n"
        f"    download: {{allow_file_urls: true, file_url_roots: [{root}], retries: 1,\n"
        "      backoff_seconds: 0.1, socket_timeout: 2, deadline_seconds: 20,\n"
        "      deadline_per_video_minute: 0}\n"
        "    scenecut: {min_clip_seconds: 0.5, max_clip_seconds: 4.0}\n"
        "    detect: {backend: mediapipe}\n"
        # a second dataset in which every video fails must not break this one or the report
        "  dead:\n    source: {type: urls, path: dead.txt}\n    download: {retries: 0}\n"
    )
    (work / "dead.txt").write_text(f"{http_server}/missing.mp4\n{http_server}/error/503.mp4\n")
    before = files_outside_results(work)
    run = snakemake(work, "all")
    assert run.returncode == 0, run.stderr[-5000:]
    results = work / "results" / "mixed"
    manifest = pd.read_parquet(results / "manifest.parquet")
    video_of = dict(zip(manifest.raw_id, manifest.video_id, strict=False))  # first of a repeat
    status = {
        stage: pd.concat([read_status(p) for p in (results / "status" / stage).glob("*.parquet")])
        .set_index("id")
        for stage in ("download", "probe", "scenecut", "filter", "blur", "audit", "detect")
    }  # fmt: skip
    problems = []
    for raw_id, outcome in expect.items():
        video = video_of[raw_id]
        if outcome == ("good",):
            for stage in ("download", "probe", "scenecut"):
                row = status[stage].loc[video]
                if row.status != "ok":
                    problems.append(f"{raw_id!r}: {stage} {row.status}: {row.reason}")
            for stage in ("filter", "blur", "audit", "detect"):
                table = status[stage]
                clips = table[table.index.str.startswith(f"{video}-c")]
                if (clips.status == "failed").any():
                    problems.append(f"{raw_id!r}: {stage} failed: {list(clips.reason)}")
            continue
        stages, wanted_status, pattern = outcome
        reached = [s for s in ("download", "probe") if video in status[s].index]
        row = status[reached[-1]].loc[video]
        if not re.fullmatch(stages, reached[-1]) or row.status != wanted_status:
            problems.append(f"{raw_id!r}: {reached[-1]} {row.status}: {row.reason}")
        elif not re.search(pattern, row.reason) or "\n" in row.reason:
            problems.append(f"{raw_id!r}: reason {row.reason!r} does not match {pattern!r}")
    assert not problems, "\n".join(problems)
    assert (manifest.id_renamed_from.notna()).sum() >= 1  # the repeated id, renamed
    uhd = status["download"].loc[video_of["uhd"]]
    assert uhd.downscaled_from == 2160
    rejected = pd.read_parquet(results / "rejected_rows.parquet")
    n_rows = len(text.splitlines())
    assert list(rejected["where"]) == [f"line {n}" for n in range(n_rows - 4, n_rows + 1)]
    assert rejected.reason.str.len().min() > 0
    assert not MARKER.exists(), "a command hidden in an id ran"
    assert files_outside_results(work) == before, "files written outside results/"
    assert not list(tmp_path.glob("escape*")) and not list(work.glob("escape*"))
    released = pd.read_parquet(results / "released_clips.parquet")
    assert len(released) > 0
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "vidmine"), "status", "mixed", "--results",
         str(work / "results")], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pending = re.findall(r"^(\w+)\s+\d+\s+\d+\s+\d+\s+(\d+)\s", shown, re.MULTILINE)
    assert pending and all(n == "0" for _, n in pending), shown  # each stage against its parent
    assert "source: 5 rows rejected" in shown, shown
    report = snakemake(work, "--report", str(work / "results" / "report.html"))
    assert report.returncode == 0, report.stderr[-3000:]
