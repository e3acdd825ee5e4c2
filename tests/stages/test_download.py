"""Download through yt-dlp against a real HTTP server on 127.0.0.1."""

import json
import time

import pytest

from vidmine.config import validate_config
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.pipeline import run_stage
from vidmine.probing import probe_video
from vidmine.runner import read_status
from vidmine.sources import SourceRecord, read_demo
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
