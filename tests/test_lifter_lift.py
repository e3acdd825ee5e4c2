"""Lifting wild tracks: gaps, confidence, the folded inference path, layout checks, rendering
on the released frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidmine.formats import FormatError
from vidmine.formats.videopose3d import CustomEntry
from vidmine.frames import VideoWriter
from vidmine.lifter.checkpoint import LoadedLifter
from vidmine.lifter.data import dataset_from_arrays
from vidmine.lifter.evaluate import evaluate, inference_model, predict
from vidmine.lifter.lift import lift_track, segments, support
from vidmine.lifter.model import TemporalModel
from vidmine.lifter.render import render_lift_gif
from vidmine.lifter.skeleton import COCO
from vidmine.lifter.synthetic import synthetic_track


def _trained_like_model(widths=(3, 3)) -> TemporalModel:
    """A model whose BatchNorms hold non-trivial statistics, as after training."""
    torch.manual_seed(0)
    model = TemporalModel(17, 2, 17, widths, channels=32)
    for bn in [model.expand_bn, *model.layers_bn]:
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_segments_split_only_at_long_gaps():
    scores = np.ones((30, 17))
    scores[5:9] = 0  # 4 lost frames: lifted through with max_gap 4
    scores[15:25] = 0  # 10 lost frames: the track splits there
    scores[28:] = 0  # a trailing gap is dropped
    assert segments(scores, max_gap=4) == [(0, 15), (25, 28)]
    assert segments(scores, max_gap=10) == [(0, 28)]
    assert segments(np.zeros((5, 17)), max_gap=3) == []


def test_support_is_the_mean_score_over_the_receptive_field():
    scores = np.ones((9, 17))
    scores[4] = 0
    got = support(scores, receptive_field=3)
    assert got.tolist() == pytest.approx([1, 1, 1, 2 / 3, 2 / 3, 2 / 3, 1, 1, 1])


def test_a_long_gap_gets_no_3d_and_zero_confidence():
    kp, _, _ = synthetic_track("Walk", frames=60, seed=5)
    kp = np.nan_to_num(kp, nan=640.0)
    scores = np.full((60, 17), 0.9, dtype=np.float32)
    scores[20:40] = 0  # the person was lost for 20 frames
    entry = CustomEntry("clip-t001", 1280, 720, kp.astype(np.float32), scores=scores)
    lifter = LoadedLifter(inference_model(_trained_like_model()), None, "coco")
    lifted = lift_track(lifter, entry, max_gap=12)
    assert lifted.segments == [(0, 20), (40, 60)]
    assert np.isnan(lifted.poses_3d[20:40]).all() and np.isfinite(lifted.poses_3d[:20]).all()
    assert np.all(lifted.confidence[20:40] == 0) and np.all(lifted.confidence[:18] > 0.89)
    assert np.isfinite(lifted.flip_disagreement_m[40:]).all()
    # each segment is lifted on its own: the first one's 3D does not see the second one's 2D
    alone = lift_track(
        lifter, CustomEntry("a", 1280, 720, entry.keypoints[:20], scores=scores[:20])
    )
    np.testing.assert_allclose(alone.poses_3d, lifted.poses_3d[:20], atol=1e-6)


def test_evaluate_runs_the_folded_model_and_gives_the_eval_models_numbers():
    model = _trained_like_model()
    kp, truth, cam = synthetic_track("Squat", frames=50, seed=1)
    ds = dataset_from_arrays([kp], [truth], ["S9"], ["Squat"], [np.zeros(9)], [(1280, 720)])
    seq = ds.sequences[0]
    folded = inference_model(model)
    assert isinstance(folded.expand_bn, torch.nn.Identity)
    np.testing.assert_allclose(
        predict(folded, seq.pos2d, COCO), predict(model, seq.pos2d, COCO), atol=1e-4
    )
    fast = evaluate(model, ds.sequences, COCO)["overall"]["mpjpe"]
    target = seq.pos3d.copy()
    target[:, 0] = 0
    slow = predict(model, seq.pos2d, COCO)
    slow_mpjpe = np.linalg.norm(slow - target, axis=-1).mean() * 1000
    assert fast == pytest.approx(slow_mpjpe, rel=1e-4)


def test_evaluate_refuses_2d_in_another_joint_order():
    kp, truth, _ = synthetic_track("Walk", frames=30, seed=2)
    ds = dataset_from_arrays([kp], [truth], ["S9"], ["Walk"], [np.zeros(9)], [(1280, 720)])
    with pytest.raises(FormatError, match="the model takes h36m 2D, the evaluation data are coco"):
        evaluate(_trained_like_model(), ds.sequences, ds.input_layout, model_layout="h36m")


def test_render_draws_the_released_frame_under_the_skeleton(tmp_path):
    kp, truth, _ = synthetic_track("Walk", frames=12, seed=3, res=(320, 240))
    kp = np.nan_to_num(kp, nan=160.0)
    video = tmp_path / "track.mp4"
    writer = VideoWriter(video, 320, 240, 25.0)
    for _ in range(12):
        writer.write(np.full((240, 320, 3), (0, 200, 0), dtype=np.uint8))  # green (BGR)
    writer.close()
    with_frame = render_lift_gif(kp, truth, 320, 240, tmp_path / "a.gif", video=video, size=2)
    without = render_lift_gif(kp, truth, 320, 240, tmp_path / "b.gif", size=2)

    def green_share(path):
        with Image.open(path) as gif:
            rgb = np.asarray(gif.convert("RGB"))
        left = rgb[:, : rgb.shape[1] // 2].astype(int)
        return np.mean((left[..., 1] > 150) & (left[..., 0] < 80) & (left[..., 2] < 80))

    assert green_share(with_frame) > 0.3 and green_share(without) == 0


def test_the_published_model_is_lifted_with_from_the_weights_cache(tmp_path, monkeypatch):
    """`--model videopose3d_coco` resolves to the cached run.py file (no network when it is
    there) and lifts COCO tracks with it: a 243-frame model, the published architecture."""
    from runpy_checkpoints import original_state_dict, run_py_checkpoint, save_like_run_py

    from vidmine.formats.videopose3d import write_custom_2d
    from vidmine.lifter import cli

    monkeypatch.setenv("VIDMINE_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "weights" / "pretrained_h36m_detectron_coco.bin"
    cached.parent.mkdir(parents=True)
    state = original_state_dict((3, 3, 3, 3, 3), channels=32)
    save_like_run_py(run_py_checkpoint(state), cached)
    kp, _, _ = synthetic_track("Walk", frames=30, seed=6)
    tracks = tmp_path / "data_2d_custom_x.npz"
    write_custom_2d(tracks, "x", [CustomEntry("c-t001", 1280, 720, np.nan_to_num(kp, nan=600.0))])
    out = tmp_path / "lifted"
    argv = ["lift", "--model", "videopose3d_coco", "--input", str(tracks), "--out-dir", str(out)]
    assert cli.main([*argv, "--device", "cpu"]) == 0
    with np.load(out / "c-t001.npz") as data:
        assert data["poses_3d"].shape == (30, 17, 3) and np.isfinite(data["poses_3d"]).all()
    wrong = ["--model-sha256", "0" * 16]
    with pytest.raises(Exception, match="SHA-256 does not match"):
        cli.main([*argv, *wrong, "--device", "cpu"])


def test_the_lifter_report_page_shows_the_gif_and_the_metrics_inline(tmp_path):
    import base64
    import json

    from vidmine.lifter.report import write_lifter_page

    gif = tmp_path / "t.gif"
    Image.new("RGB", (8, 8), "red").save(gif, format="GIF")
    lifted = tmp_path / "lifted"
    lifted.mkdir()
    poses = np.zeros((4, 17, 3), np.float32)
    poses[2:] = np.nan
    flip = np.array([0.01, 0.03, np.nan, np.nan])
    confidence = np.array([0.8, 0.6, 0, 0])
    segments = [[0, 2]]
    np.savez(lifted / "c-t001.npz", poses_3d=poses, confidence=confidence,
             flip_disagreement_m=flip, segments=segments)  # fmt: skip
    per_action = {"Walk": {"mpjpe": 50.0, "p_mpjpe": 30.0}, "Run": {"mpjpe": 70.0, "p_mpjpe": 40.0}}
    metrics = {"overall": {"mpjpe": 55.54, "p_mpjpe": 39.4}, "per_action": per_action}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    out = tmp_path / "lifter.html"
    write_lifter_page(out, gif, lifted, tmp_path / "m.json")
    page = out.read_text()
    assert base64.b64encode(gif.read_bytes()).decode() in page
    assert "<td>55.5</td>" in page and page.index("<td>Run</td>") < page.index("<td>Walk</td>")
    assert "<td>c-t001</td>" in page and "<td>0.7</td>" in page and "<td>20.0</td>" in page
    write_lifter_page(out, gif, lifted)  # a published model: no metrics
    assert "MPJPE" not in out.read_text()
