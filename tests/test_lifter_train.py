"""Training: it learns, it resumes after SIGKILL, semi-supervision lowers its own loss."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidmine.lifter.checkpoint import load_checkpoint, load_lifter
from vidmine.lifter.config import DataConfig, TrainConfig, load_dataset
from vidmine.lifter.evaluate import evaluate
from vidmine.lifter.model import TemporalModel
from vidmine.lifter.train import amp_dtype_for, bn_momentum, cpu_has_native_bf16, train

TINY_DATA = DataConfig(synthetic_frames=80, synthetic_cameras=2)
TINY = TrainConfig(channels=32, epochs=4, batch_size=64, eval_every=0, threads=1)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(TINY_DATA)


def test_bn_momentum_schedule_runs_from_01_towards_0001():
    assert bn_momentum(0, 60) == pytest.approx(0.1)
    assert bn_momentum(30, 60) == pytest.approx(0.01)
    assert bn_momentum(60, 60) == pytest.approx(0.001)


def test_trained_model_beats_untrained(tmp_path, dataset):
    test_seqs = dataset.select(TINY_DATA.subjects_test)
    torch.manual_seed(0)
    untrained = TemporalModel(17, 2, 17, TINY.filter_widths, channels=TINY.channels)
    before = evaluate(untrained, test_seqs, dataset.input_layout)["overall"]["mpjpe"]
    final = train(TINY, TINY_DATA, tmp_path / "model.pt", dataset=dataset)
    assert (tmp_path / "model.pt").exists()
    after_model = load_lifter(tmp_path / "model.pt").model
    after = evaluate(after_model, test_seqs, dataset.input_layout)["overall"]["mpjpe"]
    history = final["vidmine"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_mpjpe_mm"] < history[0]["train_mpjpe_mm"]
    assert history[-1]["lr"] == pytest.approx(1e-3 * 0.95**3)
    assert after < 0.5 * before, (before, after)
    assert after < 250, after


@pytest.mark.parametrize("amp", [True, False])
def test_mixed_precision_only_where_the_hardware_has_it(tmp_path, dataset, amp):
    """amp trains in bf16 on a CPU with native bf16 (this project's machines), else fp32;
    the checkpoint says which."""
    cfg = dataclasses.replace(TINY, amp=amp, epochs=1)
    final = train(cfg, TINY_DATA, tmp_path / "model.pt", dataset=dataset)
    expected = "bfloat16" if amp and cpu_has_native_bf16() else "float32"
    assert final["vidmine"]["precision"] == expected
    assert amp_dtype_for(torch.device("cpu")) == (torch.bfloat16 if cpu_has_native_bf16() else None)


def test_resume_repeats_the_uninterrupted_run(tmp_path, dataset):
    cfg = TrainConfig(channels=32, epochs=3, batch_size=128, eval_every=0, threads=1)
    full = train(cfg, TINY_DATA, tmp_path / "full.pt", dataset=dataset)

    class Preempted(Exception):
        pass

    def stop_after_two(epoch: int, _row: dict) -> None:
        if epoch == 2:
            raise Preempted

    resume = tmp_path / "resume.pt"
    with pytest.raises(Preempted):
        train(cfg, TINY_DATA, tmp_path / "cut.pt", resume, dataset, on_epoch_end=stop_after_two)
    assert not (tmp_path / "cut.pt").exists()
    assert load_checkpoint(resume)["epoch"] == 2
    cut = train(cfg, TINY_DATA, tmp_path / "cut.pt", resume, dataset)
    assert not resume.exists()  # cleaned up once the final model is written
    for key, value in full["model_pos"].items():
        torch.testing.assert_close(cut["model_pos"][key], value, rtol=0, atol=0)
    assert len(cut["vidmine"]["history"]) == 3


def test_resume_file_with_other_settings_is_ignored(tmp_path, dataset):
    cfg = TrainConfig(channels=32, epochs=1, batch_size=256, eval_every=0, threads=1)
    resume = tmp_path / "resume.pt"

    def crash(epoch: int, _row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, TINY_DATA, tmp_path / "m.pt", resume, dataset, on_epoch_end=crash)
    other = TrainConfig(channels=16, epochs=1, batch_size=256, eval_every=0, threads=1)
    final = train(other, TINY_DATA, tmp_path / "m.pt", resume, dataset)
    assert final["model_pos"]["expand_conv.weight"].shape[0] == 16


def test_sigkill_mid_epoch_then_rerun_resumes(tmp_path):
    out, resume = tmp_path / "model.pt", tmp_path / "resume.pt"
    cmd = [sys.executable, "-m", "vidmine.lifter.cli", "train", "--out", str(out)]
    cmd += ["--resume", str(resume), "--epochs", "4", "--channels", "96", "--batch-size", "32"]
    cmd += ["--synthetic-frames", "100", "--eval-every", "0", "--threads", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not resume.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no resume file after 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    done = load_checkpoint(resume)["epoch"]
    assert 1 <= done < 4, done
    assert not out.exists()  # the declared output only appears at the very end

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert re.search(rf"resumed from .*resume\.pt after epoch {done}/4", rerun.stderr)
    trained = re.findall(r"epoch (\d)/4 lr=", rerun.stderr)
    assert trained == [str(e) for e in range(done + 1, 5)]
    final = load_checkpoint(out)
    assert final["epoch"] == 4 and len(final["vidmine"]["history"]) == 4
    assert not resume.exists()


def test_semi_supervised_training_lowers_reprojection_loss(tmp_path):
    data = DataConfig(
        synthetic_frames=80,
        subjects_train=("S1",),
        subjects_unlabeled=("S5", "S6", "S7"),
        subjects_test=("S9",),
    )
    cfg = TrainConfig(
        channels=32,
        epochs=4,
        batch_size=64,
        warmup=1,
        semi_supervised=True,
        eval_every=4,
        threads=1,
    )
    final = train(cfg, data, tmp_path / "semi.pt")
    hist = final["vidmine"]["history"]
    assert "train_reproj" not in hist[0]  # warm-up epoch: supervised only
    reproj = [h["train_reproj"] for h in hist[1:]]
    assert reproj[-1] < 0.8 * reproj[0], reproj
    assert all("train_bone" in h and "train_traj" in h for h in hist[1:])
    assert final["model_traj"] is not None
    lifter = load_lifter(tmp_path / "semi.pt")
    assert lifter.traj_model is not None and lifter.traj_model.num_joints_out == 1


def test_checkpoint_files_are_readable_by_plain_torch_load(tmp_path, dataset):
    cfg = TrainConfig(channels=16, epochs=1, batch_size=512, eval_every=0, threads=1)
    train(cfg, TINY_DATA, tmp_path / "m.pt", dataset=dataset)
    raw = torch.load(Path(tmp_path / "m.pt"), weights_only=True)
    assert {"epoch", "lr", "random_state", "optimizer", "model_pos", "vidmine"} <= set(raw)
    assert "model_traj" not in raw  # run.py --evaluate loads model_traj whenever it is there
    assert raw["vidmine"]["arch"]["filter_widths"] == [3, 3, 3]
