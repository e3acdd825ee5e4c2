"""Download through yt-dlp against a real HTTP server on 127.0.0.1."""

import json
import time

import pytest

from conftest import copy_demo_video
from vidmine.config import validate_config
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.pipeline import run_stage
from vidmine.probing import probe_video
from vidmine.runner import read_status
from vidmine.sources import SourceRecord, demo_data_dir, read_demo
from vidmine.stages.download.stage import DownloadStage


def settings(**overrides):
    config = validate_config(
        {"datasets": {"d": {"source": {"type": "demo"}, "download": overrides}}}
    )
    return config["datasets"]["d"]["download"]


FAST = {"retries": 1, "backoff_seconds": 0.1, "socket_timeout": 1}


@pytest.fixture
def stage(results):
    return DownloadStage(DatasetLayout(results, "d"), "s00000", settings(**FAST))


def test_ok_download_keeps_video_and_info_json(stage, http_server, demo_videos):
    result = stage.process({"id": "bikes", "url": f"{http_server}/video/bikes.mp4"})
    assert result.status == "ok", result.reason
    video, info = (stage.layout.root / p for p in result.outputs)
    assert video.name == "bikes.mp4" and info.name == "bikes.info.json"
    assert video.read_bytes() == demo_videos["bikes"].read_bytes()
    assert json.loads(info.read_text())["webpage_url"].endswith("/video/bikes.mp4")
    assert not list(video.parent.glob(".*"))  # no temporary leftovers


def test_404_is_a_failed_row_with_the_reason(stage, http_server):
    result = stage.process({"id": "gone", "url": f"{http_server}/missing.mp4"})
    assert result.status == "failed"
    assert "404" in result.reason


def test_stalling_server_times_out_after_retries(stage, http_server):
    started = time.monotonic()
    result = stage.process({"id": "slow", "url": f"{http_server}/stall.mp4"})
    assert result.status == "failed"
    assert "timed out" in result.reason.lower()
    assert time.monotonic() - started < 30


def test_html_page_is_not_a_video(stage, http_server):
    result = stage.process({"id": "page", "url": f"{http_server}/page.html"})
    assert result.status == "failed"
    assert "Unsupported URL" in result.reason


def test_file_urls_refused_unless_allowed(results):
    url = read_demo(["carphone"])[0].url
    layout = DatasetLayout(results, "d")
    refused = DownloadStage(layout, "s00000", settings(**FAST)).process({"id": "c", "url": url})
    assert refused.status == "failed"
    assert "file:// URLs are disabled" in refused.reason
    allowed = DownloadStage(layout, "s00000", settings(allow_file_urls=True, **FAST))
    assert allowed.process({"id": "c", "url": url}).status == "ok"


def test_a_page_never_reaches_a_local_file(results, http_server, demo_videos):
    """Even with file URLs allowed (the demo's setting), a web page embedding a file URL or
    redirecting to one gets nothing: only the manifest's own file URLs are read."""
    layout = DatasetLayout(results, "d")
    stage = DownloadStage(layout, "s00000", settings(allow_file_urls=True, **FAST))
    for route in ("embed/carphone.html", "to-file/carphone.mp4"):
        result = stage.process({"id": "page", "url": f"{http_server}/{route}"})
        assert result.status == "failed", route
        assert result.reason.startswith("refused"), result.reason
    assert not [p for p in layout.private_videos("s00000").rglob("*") if p.is_file()]


def test_file_urls_only_under_the_allowed_roots(results, tmp_path, demo_videos):
    """A manifest file URL must lie under download.file_url_roots (default: the source's own
    folder), links resolved: neither another folder nor a link out of the root is read."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir(), elsewhere.mkdir()
    inside = copy_demo_video(demo_videos, "carphone", root / "inside.mp4")
    outside = copy_demo_video(demo_videos, "carphone", elsewhere / "secret.mp4")
    (root / "link.mp4").symlink_to(outside)
    allowed = settings(allow_file_urls=True, file_url_roots=[str(root)], **FAST)
    stage = DownloadStage(DatasetLayout(results, "d"), "s00000", allowed)
    assert stage.process({"id": "in", "url": inside.as_uri()}).status == "ok"
    for name, url in (("out", outside.as_uri()), ("link", (root / "link.mp4").absolute().as_uri())):
        result = stage.process({"id": name, "url": url})
        assert result.status == "failed" and "outside download.file_url_roots" in result.reason
    other = stage.process({"id": "ftp", "url": "ftp://127.0.0.1/video.mp4"})
    assert other.status == "failed" and "scheme" in other.reason


def test_the_demo_source_roots_its_file_urls_in_its_data_folder():
    roots = settings(allow_file_urls=True)["file_url_roots"]
    assert roots == [str(demo_data_dir())]
    assert read_demo(["carphone"])[0].url.startswith(demo_data_dir().as_uri())


def test_one_bad_video_never_kills_the_shard(results, http_server):
    layout = DatasetLayout(results, "d")
    urls = [
        f"{http_server}/video/carphone.mp4",
        f"{http_server}/missing.mp4",
        f"{http_server}/page.html",
    ]
    write_manifest(
        [SourceRecord(raw_id=f"v{i}", url=u) for i, u in enumerate(urls)],
        "urls",
        10,
        layout.manifest,
    )
    run_stage("download", layout, "s00000", settings(**FAST))
    status = read_status(layout.status("download", "s00000")).set_index("id")
    assert list(status.status) == ["ok", "failed", "failed"]
    assert status.loc["v0", "bytes"] > 0
    assert status.loc["v1", "reason"] and status.loc["v2", "reason"]


def test_time_span_downloads_only_that_span(stage, http_server):
    """Kinetics-style spans: yt-dlp's download_ranges cuts 2 s out of bikes.mp4 (10 s)."""
    item = {"id": "span", "url": f"{http_server}/video/bikes.mp4", "start": 2.0, "end": 4.0}
    result = stage.process(item)
    assert result.status == "ok", result.reason
    facts = probe_video(stage.layout.root / result.outputs[0])
    assert facts["n_frames"] == 50 and abs(facts["duration"] - 2.0) < 0.05


# --- the failures seen at scale, against the local server -----------------------------------


def _ok_video(result, layout, demo_videos, name="bikes"):
    assert result.status == "ok", result.reason
    video = layout.root / result.outputs[0]
    assert video.read_bytes() == demo_videos[name].read_bytes()


def test_a_connection_cut_mid_body_is_resumed_by_ytdlp_with_the_configured_backoff(
    results, http_server, demo_videos
):
    from conftest import VideoServer

    layout = DatasetLayout(results, "d")
    stage = DownloadStage(layout, "s00000", settings(**FAST))
    VideoServer.requests.pop("/cut/bikes.mp4", None)
    result = stage.process({"id": "cut", "url": f"{http_server}/cut/bikes.mp4"})
    _ok_video(result, layout, demo_videos)
    ranges = VideoServer.requests["/cut/bikes.mp4"]
    half = demo_videos["bikes"].stat().st_size // 2
    # yt-dlp's own retry resumed from the byte it reached (its sleep function was called with
    # n=..., which the old backoff(attempt) signature turned into a TypeError)
    resumed = [int(r.split("=")[1].rstrip("-")) for r in ranges if r.startswith("bytes=")]
    assert resumed and 0 < resumed[0] <= half, ranges
    assert not (layout.private_videos("s00000") / ".cut.resume").exists()


def test_a_slow_drip_fails_at_the_deadline_and_keeps_the_partial_file(results, http_server):
    layout = DatasetLayout(results, "d")
    stage = DownloadStage(
        layout, "s00000", settings(**FAST, deadline_seconds=3, deadline_per_video_minute=0)
    )
    started = time.monotonic()
    result = stage.process({"id": "drip", "url": f"{http_server}/drip/bikes.mp4"})
    elapsed = time.monotonic() - started
    assert result.status == "failed"
    assert result.reason.startswith("deadline of 3 s passed before the download finished")
    assert 2.5 < elapsed < 10
    # The item's resume folder is kept for a rerun (the runner's sweep of partial files spares
    # it); 6 bytes in 3 s did not fill yt-dlp's first block, so there is no .part file yet.
    assert (layout.private_videos("s00000") / ".drip.resume").is_dir()


def test_429_with_retry_after_waits_what_the_server_asks_then_succeeds(
    results, http_server, demo_videos
):
    from conftest import VideoServer

    layout = DatasetLayout(results, "d")
    stage = DownloadStage(layout, "s00000", settings(retries=2, backoff_seconds=0.01))
    VideoServer.requests.pop("/busy/bikes.mp4", None)
    started = time.monotonic()
    result = stage.process({"id": "busy", "url": f"{http_server}/busy/bikes.mp4"})
    _ok_video(result, layout, demo_videos)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1, not the 0.01 s backoff


def test_5xx_is_retried_then_succeeds(results, http_server, demo_videos):
    from conftest import VideoServer

    layout = DatasetLayout(results, "d")
    stage = DownloadStage(layout, "s00000", settings(retries=3, backoff_seconds=0.05))
    VideoServer.requests.pop("/flaky/bikes.mp4", None)
    result = stage.process({"id": "flaky", "url": f"{http_server}/flaky/bikes.mp4"})
    _ok_video(result, layout, demo_videos)
    assert len(VideoServer.requests["/flaky/bikes.mp4"]) >= 3


def test_a_permanent_error_keeps_no_partial_folder(results, http_server):
    layout = DatasetLayout(results, "d")
    stage = DownloadStage(layout, "s00000", settings(**FAST))
    assert stage.process({"id": "gone", "url": f"{http_server}/missing.mp4"}).status == "failed"
    assert not (layout.private_videos("s00000") / ".gone.resume").exists()


def test_a_rerun_resumes_the_partial_file_of_a_failed_attempt(results, http_server, demo_videos):
    from conftest import VideoServer

    layout = DatasetLayout(results, "d")
    url = f"{http_server}/cut/bikes.mp4"
    VideoServer.requests.pop("/cut/bikes.mp4", None)
    no_retries = DownloadStage(layout, "s00000", settings(retries=0, socket_timeout=1))
    first = no_retries.process({"id": "resumed", "url": url})
    assert first.status == "failed", first.reason
    parts = list((layout.private_videos("s00000") / ".resumed.resume").glob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 0
    kept = parts[0].stat().st_size
    second = no_retries.process({"id": "resumed", "url": url})  # the rerun
    _ok_video(second, layout, demo_videos)
    assert VideoServer.requests["/cut/bikes.mp4"][-1] == f"bytes={kept}-"


def test_a_direct_file_taller_than_max_height_is_scaled_down(results, http_server):
    """A plain file URL offers yt-dlp no formats to choose from, so its height<=? filter lets
    any height through; the stage scales it to max_height (bikes is 272 px high)."""
    stage = DownloadStage(DatasetLayout(results, "d"), "s00000", settings(max_height=144, **FAST))
    result = stage.process({"id": "bikes", "url": f"{http_server}/video/bikes.mp4"})
    assert result.status == "ok", result.reason
    assert result.fields["downscaled_from"] == 272
    facts = probe_video(stage.layout.root / result.outputs[0])
    assert facts["height"] == 144 and facts["n_frames"] == 250
