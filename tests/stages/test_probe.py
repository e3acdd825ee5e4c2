"""Probe on real files: the demo videos and broken files made from them."""

import pytest

from conftest import dataset_settings, ffmpeg
from vidmine.layout import DatasetLayout
from vidmine.probing import probe_video
from vidmine.stages.probe.stage import ProbeStage


def test_probe_reads_the_facts(demo_videos):
    facts = probe_video(demo_videos["bikes"])
    assert (facts["width"], facts["height"], facts["n_frames"], facts["fps"]) == (
        640,
        272,
        250,
        25.0,
    )
    assert facts["codec"] == "h264" and facts["rotation"] == 0 and not facts["vfr"]
    assert probe_video(demo_videos["bigbuckbunny"])["has_audio"]


def test_probe_reads_rotation(tmp_path, demo_videos):
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", demo_videos["carphone"], "-c", "copy", "-metadata:s:v", "rotate=90", rotated)
    assert probe_video(rotated)["rotation"] in (90, 270)


@pytest.fixture
def broken_files(tmp_path, demo_videos):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "text.mp4"
    text.write_text("<html>this is not a video</html>")
    audio = tmp_path / "audio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", audio)
    # moov at the front, so the index survives and only demuxing shows the damage.
    faststart = tmp_path / "faststart.mp4"
    ffmpeg("-i", demo_videos["bikes"], "-c", "copy", "-movflags", "+faststart", faststart)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(faststart.read_bytes()[:300_000])
    moov_lost = tmp_path / "moov_lost.mp4"
    moov_lost.write_bytes(demo_videos["bikes"].read_bytes()[:300_000])
    return {"empty": empty, "text": text, "audio": audio, "truncated": truncated, "moov": moov_lost}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file (0 bytes)"),
        ("text", "not a readable video"),
        ("audio", "no video stream (streams: audio)"),
        ("truncated", "truncated: container lists 250 frames, only"),
        ("moov", "not a readable video"),
    ],
)
def test_bad_files_become_failed_rows_with_reasons(broken_files, results, name, reason):
    layout = DatasetLayout(results, "d")
    stage = ProbeStage(layout, "s00000", dataset_settings()["probe"])
    result = stage.process({"id": name, "video": str(broken_files[name])})
    assert result.status == "failed"
    assert reason in result.reason
