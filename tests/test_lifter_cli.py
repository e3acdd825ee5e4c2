"""CLI round trip (train -> evaluate -> lift) and lifting/rendering of COCO tracks."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vidmine.formats.videopose3d import CustomEntry, interpolate_missing, write_custom_2d
from vidmine.lifter import cli
from vidmine.lifter.checkpoint import LoadedLifter
from vidmine.lifter.lift import lift_keypoints, safe_name
from vidmine.lifter.model import TemporalModel
from vidmine.lifter.render import render_lift_gif
from vidmine.lifter.synthetic import ACTIONS, synthetic_track

SMALL = ["--epochs", "2", "--channels", "32", "--batch-size", "128", "--threads", "1"]
SMALL += ["--synthetic-frames", "60"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp("lifter") / "model.pt"
    assert cli.main(["train", "--out", str(out), "--filter-widths", "3,3", *SMALL]) == 0
    yield out
    torch.set_num_threads(before)


def test_register_adds_lifter_subcommands():
    parser = argparse.ArgumentParser(prog="vidmine")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lifter", "train", "--out", "m.pt", "--filter-widths", "3,3,3,3"])
    assert args.func.__name__ == "_cmd_train"
    assert args.filter_widths == (3, 3, 3, 3)
    assert "channels" not in vars(args)  # unset flags keep the config defaults
    with pytest.raises(SystemExit):
        parser.parse_args(["lifter", "train", "--out", "m.pt", "--data", "kinetics"])


def test_settings_json_is_merged_under_explicit_flags():
    parser = argparse.ArgumentParser()
    cli._add_commands(parser.add_subparsers())
    settings = json.dumps({"data": "h36m", "channels": 64, "filter_widths": [3, 3], "enabled": 1})
    args = parser.parse_args(["train", "--out", "m.pt", "--settings", settings, "--channels", "8"])
    train_cfg = cli.TrainConfig.from_dict(cli._pick(args, cli.TrainConfig))
    data_cfg = cli.DataConfig.from_dict(cli._pick(args, cli.DataConfig))
    assert (train_cfg.channels, train_cfg.filter_widths, data_cfg.source) == (8, (3, 3), "h36m")
    args = parser.parse_args(["train", "--out", "m.pt", "--settings", '{"chanels": 64}'])
    with pytest.raises(SystemExit, match="chanels"):
        cli._pick(args, cli.TrainConfig)


def test_evaluate_writes_metrics_and_plot(model_path, tmp_path, capsys):
    out_json, out_png = tmp_path / "metrics.json", tmp_path / "metrics.png"
    argv = ["evaluate", "--model", str(model_path), "--out-json", str(out_json)]
    assert cli.main([*argv, "--out-plot", str(out_png), "--device", "cpu"]) == 0
    metrics = json.loads(out_json.read_text())
    assert set(metrics["per_action"]) == set(ACTIONS)
    for name in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"):
        assert 0 < metrics["overall"][name] < 2000
    assert metrics["overall"]["p_mpjpe"] <= metrics["overall"]["mpjpe"]
    assert metrics["data"]["synthetic_frames"] == 60  # data settings come from the model
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(capsys.readouterr().out)["mpjpe"] == metrics["overall"]["mpjpe"]


def test_lift_command_writes_tracks_and_gif(model_path, tmp_path):
    walk, _, _ = synthetic_track("Walk", frames=40, seed=1)
    wave, _, _ = synthetic_track("Wave", frames=30, seed=2)
    tracks = tmp_path / "data_2d_custom_demo.npz"
    # VideoPose3D's files hold no gaps (the lifter fills those of hand-made files itself)
    named = {"clip.mp4": walk, "b/track 2": wave}
    entries = [CustomEntry(n, 1280, 720, interpolate_missing(kp)) for n, kp in named.items()]
    write_custom_2d(tracks, "demo", entries)
    out_dir = tmp_path / "lifted"
    argv = ["lift", "--model", str(model_path), "--input", str(tracks), "--out-dir", str(out_dir)]
    assert cli.main([*argv, "--render", "1", "--fps", "10", "--device", "cpu"]) == 0
    lifted = np.load(out_dir / "clip.mp4.npz")
    assert lifted["poses_3d"].shape == (40, 17, 3) and np.isfinite(lifted["poses_3d"]).all()
    assert int(lifted["width"]) == 1280 and lifted["segments"].tolist() == [[0, 40]]
    assert lifted["confidence"].shape == (40,) and np.all(lifted["confidence"] == 1)
    assert np.isfinite(lifted["flip_disagreement_m"]).all()
    # scores are ones: the longest track has the most seen frames, so only "clip.mp4" gets a GIF
    assert (out_dir / "b_track_2.npz").exists() and not (out_dir / "b_track_2.gif").exists()
    with Image.open(out_dir / "clip.mp4.gif") as gif:
        assert gif.n_frames == 40


def _lifter(layout: str) -> LoadedLifter:
    torch.manual_seed(0)
    return LoadedLifter(TemporalModel(17, 2, 17, (3, 3), channels=16).eval(), None, layout)


def test_lifting_handles_missing_joints_and_layouts():
    kp, truth, _ = synthetic_track("Squat", frames=25, seed=3)
    kp[5:8, 9] = np.nan  # a wrist lost for three frames
    for layout in ("coco", "h36m"):  # an h36m-input model gets the COCO -> H36M conversion
        pose = lift_keypoints(_lifter(layout), kp, 1280, 720, device="cpu")
        assert pose.shape == truth.shape and np.isfinite(pose).all()
    with pytest.raises(ValueError, match="cannot feed"):
        lift_keypoints(_lifter("coco"), kp, 1280, 720, track_layout="h36m")


def test_render_subsamples_long_tracks(tmp_path):
    kp, truth, _ = synthetic_track("Jump", frames=50, seed=4)
    path = render_lift_gif(kp, truth, 1280, 720, tmp_path / "x.gif", max_frames=12, size=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 12 and gif.size == (352, 160)


def test_safe_name():
    assert safe_name("a/b c.mp4") == "a_b_c.mp4"
    assert safe_name("...") == "track"
