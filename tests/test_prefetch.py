"""`vidmine fetch-weights`: every weights file the config names goes into the cache ahead of
submission, and the stages then load it from there with the server gone."""

from __future__ import annotations

import hashlib
import os
import subprocess

import numpy as np
import pytest
import yaml

from conftest import VideoServer
from vidmine.config import validate_config
from vidmine.prefetch import weight_sources


def write_config(path, datasets: dict) -> None:
    path.write_text(yaml.safe_dump({"datasets": datasets}))


def fetch(config, cache, *datasets):
    env = {**os.environ, "VIDMINE_CACHE": str(cache)}
    return subprocess.run(
        ["vidmine", "fetch-weights", "--config", str(config), *datasets],
        capture_output=True, text=True, env=env,
    )  # fmt: skip


@pytest.fixture
def cartoon_weights(tmp_path):
    import torch

    from vidmine.stages.filter.backends.cartoon import build_model

    torch.manual_seed(0)
    weights = tmp_path / "cartoon_detector.pth"
    torch.save(build_model().state_dict(), weights)
    VideoServer.files["cartoon_detector"] = weights
    yield weights, hashlib.sha256(weights.read_bytes()).hexdigest()
    VideoServer.files.pop("cartoon_detector", None)


def test_default_backends_load_no_weights():
    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})
    assert weight_sources(config["datasets"]["d"]) == []


def test_a_published_lift_model_is_listed_only_when_the_lifter_lifts_with_it():
    def listed(lifter):
        datasets = {"d": {"source": {"type": "demo"}, "lifter": lifter}}
        return weight_sources(validate_config({"datasets": datasets})["datasets"]["d"])

    [source] = listed({"enabled": True, "lift_model": "videopose3d_coco"})
    assert source.source.endswith("/video-pose-3d/pretrained_h36m_detectron_coco.bin")
    assert listed({"enabled": True}) == []  # the dataset's own model
    assert listed({"enabled": False, "lift_model": "videopose3d_coco"}) == []


def test_official_detect_and_flow_weights_are_listed_with_their_checksums():
    datasets = {
        "d": {
            "source": {"type": "demo"},
            "detect": {"backend": "torchvision"},
            "flow": {"backend": "raft"},
        }
    }
    sources = weight_sources(validate_config({"datasets": datasets})["datasets"]["d"])
    names = [s.source.rsplit("/", 1)[1] for s in sources]
    assert names == [
        "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        "raft_large_C_T_V1-22a6c225.pth",
    ]
    assert [s.sha256 for s in sources] == ["fc266e95", "dd69338a", "22a6c225"]


def test_fetch_weights_fills_the_cache_and_the_stage_then_loads_offline(
    tmp_path, http_server, cartoon_weights, results
):
    from vidmine.layout import DatasetLayout
    from vidmine.stages.filter.stage import FilterStage

    weights, digest = cartoon_weights
    url = f"{http_server}/video/cartoon_detector.pth"
    cartoon = {"backend": "resnet18", "weights": url, "sha256": digest}
    config = tmp_path / "config.yaml"
    write_config(
        config,
        {
            "good": {"source": {"type": "demo"}, "filter": {"cartoon": cartoon}},
            "plain": {"source": {"type": "demo"}},
        },
    )
    cache = tmp_path / "cache"
    first = fetch(config, cache)
    assert first.returncode == 0, first.stderr
    assert f"good: filter cartoon classifier: fetched: {cache}/weights/cartoon_detector.pth" in (
        first.stdout
    )
    assert (cache / "weights" / "cartoon_detector.pth").read_bytes() == weights.read_bytes()
    second = fetch(config, cache, "good")
    assert "good: filter cartoon classifier: cached:" in second.stdout
    # The server no longer has the file (a compute node without network): the stage still
    # builds, from the cache, and scores a clip.
    VideoServer.files.pop("cartoon_detector")
    os.environ["VIDMINE_CACHE"] = str(cache)
    try:
        settings = validate_config(
            {"datasets": {"d": {"source": {"type": "demo"}, "filter": {"cartoon": cartoon}}}}
        )["datasets"]["d"]["filter"]
        stage = FilterStage(DatasetLayout(results, "d"), "s0", settings)
        frames = [np.full((64, 64, 3), 128, np.uint8)] * 2
        assert np.isfinite(stage.cartoon(frames, {}))
    finally:
        del os.environ["VIDMINE_CACHE"]


def test_a_bad_file_is_reported_in_one_line_and_not_kept(tmp_path, http_server, cartoon_weights):
    config = tmp_path / "config.yaml"
    cartoon = {
        "backend": "resnet18",
        "weights": f"{http_server}/video/cartoon_detector.pth",
        "sha256": "0" * 64,
    }
    missing = {"backend": "resnet18", "weights": f"{http_server}/missing.pth"}
    write_config(
        config,
        {
            "bad": {"source": {"type": "demo"}, "filter": {"cartoon": cartoon}},
            "gone": {"source": {"type": "demo"}, "filter": {"cartoon": missing}},
        },
    )
    run = fetch(config, tmp_path / "cache")
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("bad: filter cartoon classifier: error: ")
    assert "SHA-256 does not match" in lines[0]
    assert lines[1].startswith("gone: filter cartoon classifier: error: cannot download")
    assert "vidmine fetch-weights" in lines[1]
    assert not (tmp_path / "cache" / "weights" / "cartoon_detector.pth").exists()
    assert "no dataset nope" in fetch(config, tmp_path / "cache", "nope").stderr
