"""Checkpoints both ways between vidmine and VideoPose3D's run.py.

* run.py's own files (``torch.save`` of a dict holding the ``np.random.RandomState``
  object, written under numpy 1.16 ... 2.x, zip or legacy torch format) open in the
  restricted loader, generator state included;
* vidmine's files pass run.py's ``--evaluate`` and ``--resume`` reads under current torch,
  whose plain ``torch.load`` is weights-only: once re-stated here, once by running the
  original lines of run.py (and its model and generator) from the mirror when it exists;
* ``vidmine lifter lift`` / ``evaluate`` take a published-architecture file written the way
  run.py writes it.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from runpy_checkpoints import (
    DATA,
    NUMPY_FLAVOURS,
    REAL_PICKLES,
    dumps_as,
    fixture_random_state,
    original_state_dict,
    run_py_checkpoint,
    save_like_run_py,
)

from vidmine.formats import FormatError
from vidmine.formats.videopose3d import CustomEntry, interpolate_missing, write_custom_2d
from vidmine.lifter.checkpoint import load_checkpoint, load_lifter
from vidmine.lifter.config import DataConfig, TrainConfig
from vidmine.lifter.model import TemporalModel
from vidmine.lifter.synthetic import synthetic_track
from vidmine.lifter.train import train

MIRROR = Path("/work/.mirror/facebookresearch+VideoPose3D/repo")
needs_mirror = pytest.mark.skipif(
    not MIRROR.is_dir(), reason="the VideoPose3D mirror is not on this machine"
)
SMALL_WIDTHS, SMALL_CHANNELS = [3, 3], 16


# ------------------------------------------------------------------ run.py files -> vidmine
@pytest.mark.parametrize("numpy_flavour", sorted(REAL_PICKLES))
def test_emulated_numpy_pickles_are_byte_identical_to_real_ones(numpy_flavour):
    """The fixture writer is exact: same bytes as the numpy version it stands for."""
    real = (DATA / f"randomstate-numpy-{REAL_PICKLES[numpy_flavour]}.pkl").read_bytes()
    assert dumps_as(fixture_random_state(), numpy_flavour) == real


@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("numpy_flavour", NUMPY_FLAVOURS)
def test_run_py_checkpoint_loads_with_its_random_state(tmp_path, numpy_flavour, legacy_format):
    state = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)
    written = run_py_checkpoint(state, epoch=30, model_traj=None)
    path = save_like_run_py(written, tmp_path / "epoch_30.bin", numpy_flavour, legacy_format)
    expected_globals = {
        "1.16": b"numpy.random\n__RandomState_ctor",
        "1.23": b"numpy.core.multiarray\n_reconstruct",
        "1.26": b"numpy.random._pickle\n__bit_generator_ctor",
        "2.x": b"numpy._core.multiarray\n_reconstruct",
    }[numpy_flavour]
    assert expected_globals in path.read_bytes()  # torch's zip stores data.pkl uncompressed

    ckpt = load_checkpoint(path)
    restored = ckpt["random_state"]
    assert isinstance(restored, np.random.RandomState)
    # run.py's ChunkedGenerator.next_pairs shuffles with self.random.permutation
    np.testing.assert_array_equal(restored.permutation(64), written["random_state"].permutation(64))
    assert ckpt["epoch"] == 30 and ckpt["random_state_semi"] is None
    lifter = load_lifter(path, input_layout="coco")
    for key, value in lifter.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_semi_supervised_run_py_checkpoint_keeps_both_generators(tmp_path):
    state = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)
    traj = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS, joints_out=1)
    written = run_py_checkpoint(state, epoch=5, model_traj=traj)
    ckpt = load_checkpoint(save_like_run_py(written, tmp_path / "epoch_5.bin", "1.16"))
    semi = ckpt["random_state_semi"]
    np.testing.assert_array_equal(semi.permutation(9), np.random.RandomState(4321).permutation(9))
    lifter = load_lifter(tmp_path / "epoch_5.bin")
    assert lifter.traj_model is not None and lifter.traj_model.num_joints_out == 1


@pytest.mark.parametrize(
    "smuggled, numpy_flavour, refusal",
    [
        (np.random.RandomState(np.random.PCG64(1)), "2.x", "numpy.random._pcg64.PCG64"),
        (np.random.RandomState(np.random.PCG64(1)), "1.23", "bit generator 'PCG64'"),
        (np.random.RandomState(np.random.MT19937(5)), "2.x", "SeedSequence"),
        (np.array([1, "a"], dtype=object), "2.x", "dtype 'O8'"),
        (np.zeros(3), "1.26", "dtype 'f8'"),
    ],
    ids=["PCG64", "PCG64-by-name", "seed-sequence", "object-array", "float-array"],
)
def test_only_what_a_run_py_random_state_needs_is_allowed(
    tmp_path, smuggled, numpy_flavour, refusal
):
    """The allow-list is the RandomState of run.py, not numpy in general."""
    ckpt = run_py_checkpoint(original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS))
    ckpt["random_state_semi"] = smuggled
    path = save_like_run_py(ckpt, tmp_path / "epoch_80.bin", numpy_flavour)
    with pytest.raises(FormatError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused: ") and "\n" not in message, message
    assert refusal in message


def test_unreadable_files_get_one_line(tmp_path):
    whole = save_like_run_py(
        run_py_checkpoint(original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)),
        tmp_path / "whole.bin",
    )
    cut = tmp_path / "cut.bin"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    text = tmp_path / "notes.bin"
    text.write_bytes(b"not a checkpoint at all")
    cases = [
        (cut, "not a readable torch checkpoint"),
        (empty, "not a readable torch checkpoint: the file is empty or cut short"),
        (text, "refused: "),  # read as a legacy-format pickle: an opcode it does not take
        (tmp_path / "absent.bin", "no such checkpoint file"),
    ]
    for path, words in cases:
        with pytest.raises(FormatError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert message.startswith(f"{path}: {words}") and "\n" not in message, message


# ------------------------------------------------------------------ vidmine files -> run.py
TINY_DATA = DataConfig(synthetic_frames=40, synthetic_cameras=1)
TINY_TRAIN = TrainConfig(
    channels=SMALL_CHANNELS, filter_widths=tuple(SMALL_WIDTHS), epochs=2, batch_size=256,
    eval_every=0, threads=1,
)  # fmt: skip
SEMI_DATA = DataConfig(
    synthetic_frames=40, synthetic_cameras=1, subjects_train=("S1",),
    subjects_unlabeled=("S5",), subjects_test=("S9",),
)  # fmt: skip


class Preempted(Exception):
    pass


@pytest.fixture(scope="module")
def vidmine_files(tmp_path_factory) -> dict[str, Path]:
    """A final model, a resume file (run killed after epoch 1 of 2) and a semi-supervised
    final model, as `vidmine lifter train` writes them."""
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("vidmine_ckpts")
    train(TINY_TRAIN, TINY_DATA, root / "model.pt")

    def stop(epoch: int, _row: dict) -> None:
        raise Preempted

    with pytest.raises(Preempted):
        train(TINY_TRAIN, TINY_DATA, root / "cut.pt", root / "resume.pt", on_epoch_end=stop)
    semi_cfg = TrainConfig(**{**TINY_TRAIN.to_dict(), "semi_supervised": True, "warmup": 1})
    train(semi_cfg, SEMI_DATA, root / "semi.pt")
    torch.set_num_threads(before)
    return {"final": root / "model.pt", "resume": root / "resume.pt", "semi": root / "semi.pt"}


def run_py_reads(path: Path, mode: str, semi_supervised: bool) -> dict:
    """run.py's checkpoint reads (HEAD 1afb1ca), re-stated; returns what it ends up with.

    run.py L207: ``torch.load(chk_filename, map_location=lambda storage, loc: storage)``, no
    weights_only argument, so weights-only on torch >= 2.6; L208 prints ``checkpoint['epoch']``;
    L209-210 ``load_state_dict(checkpoint['model_pos'])`` (strict) into TemporalModel built
    from the command line (-arc, --channels); L212-219 (evaluate) ``if 'model_traj' in
    checkpoint: model_traj.load_state_dict(checkpoint['model_traj'])``; L293-305 (resume)
    ``epoch = checkpoint['epoch']``, ``if 'optimizer' in checkpoint and
    checkpoint['optimizer'] is not None:`` load it and ``set_random_state(
    checkpoint['random_state'])`` (common/generators.py: next_pairs calls
    ``self.random.permutation``), ``lr = checkpoint['lr']`` (then ``lr *= lr_decay`` and
    ``'%f' % lr``), and when semi-supervised ``checkpoint['model_traj']`` and
    ``set_random_state(checkpoint['random_state_semi'])``.
    """
    checkpoint = torch.load(path, map_location=lambda storage, loc: storage)
    got = {"epoch": "{}".format(checkpoint["epoch"])}
    model_pos = TemporalModel(17, 2, 17, SMALL_WIDTHS, channels=SMALL_CHANNELS)
    model_pos.load_state_dict(checkpoint["model_pos"])
    assert _shapes(checkpoint["model_pos"]) == _shapes(
        original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)
    )
    if mode == "evaluate" and "model_traj" in checkpoint:
        model_traj = TemporalModel(17, 2, 1, SMALL_WIDTHS, channels=SMALL_CHANNELS)
        model_traj.load_state_dict(checkpoint["model_traj"])
        got["model_traj"] = model_traj
    if mode == "resume":
        got["epoch"] = checkpoint["epoch"]
        if "optimizer" in checkpoint and checkpoint["optimizer"] is not None:
            optimizer = torch.optim.Adam(model_pos.parameters(), lr=1e-3, amsgrad=True)
            optimizer.load_state_dict(checkpoint["optimizer"])
            checkpoint["random_state"].permutation(8)
            got["optimizer"] = optimizer
        got["lr"] = "%f" % (checkpoint["lr"] * 0.95)
        if semi_supervised:
            model_traj = TemporalModel(17, 2, 1, SMALL_WIDTHS, channels=SMALL_CHANNELS)
            model_traj.load_state_dict(checkpoint["model_traj"])
            checkpoint["random_state_semi"].permutation(8)
    return got


def _shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_run_py_own_load_refuses_its_own_files_on_current_torch(tmp_path):
    """Why the allow-list exists, and why vidmine writes no RandomState: run.py's L207
    ``torch.load`` is weights-only on this torch and stops at the generator object."""
    ckpt = run_py_checkpoint(original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS))
    path = save_like_run_py(ckpt, tmp_path / "epoch_80.bin")
    with pytest.raises(pickle.UnpicklingError, match="__randomstate_ctor"):
        torch.load(path, map_location=lambda storage, loc: storage)


@pytest.mark.parametrize("kind, mode", [
    ("final", "evaluate"), ("final", "resume"), ("resume", "evaluate"), ("resume", "resume"),
    ("semi", "evaluate"),
])  # fmt: skip
def test_vidmine_files_pass_run_py_reads(vidmine_files, kind, mode):
    path = vidmine_files[kind]
    got = run_py_reads(path, mode, semi_supervised=False)
    ckpt = load_checkpoint(path)
    assert got["epoch"] in (ckpt["epoch"], str(ckpt["epoch"]))
    assert ("model_traj" in got) == (kind == "semi" and mode == "evaluate")
    if mode == "resume":
        # run.py resumes at the next epoch's learning rate: lr0 * decay ** epochs_done
        assert ckpt["lr"] == pytest.approx(1e-3 * 0.95 ** ckpt["epoch"])
        assert "optimizer" not in got  # a fresh Adam: a RandomState could not be in the file
    assert set(ckpt) >= {"epoch", "lr", "random_state", "optimizer", "model_pos"}
    if kind == "resume":  # vidmine's own resume still has its Adam state
        assert ckpt["vidmine_optimizer"]["state"] and ckpt["epoch"] == 1


def test_format_1_resume_files_still_resume(vidmine_files, tmp_path):
    """Before format 2 the Adam/scaler state sat under run.py's optimizer key and "scaler"."""
    ckpt = load_checkpoint(vidmine_files["resume"])
    ckpt["optimizer"] = ckpt.pop("vidmine_optimizer")
    ckpt["scaler"] = ckpt.pop("vidmine_scaler")
    ckpt["vidmine"]["format"] = 1
    old = tmp_path / "resume.pt"
    torch.save(ckpt, old)
    seen = []
    final = train(
        TINY_TRAIN, TINY_DATA, tmp_path / "model.pt", old, on_epoch_end=lambda e, _: seen.append(e)
    )
    assert seen == [2] and final["epoch"] == 2 and len(final["vidmine"]["history"]) == 2


# ------------------------------------------------------------------ the original code itself
def original_source(path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(MIRROR), "show", f"HEAD:{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def original_module(path: str, tmp_path: Path) -> types.ModuleType:
    file = tmp_path / path.replace("/", "_")
    file.write_text(original_source(path))
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_py_lines(source: str, first: str, stop: str | None = None) -> str:
    """The statement of run.py starting with the line ``first`` (to its dedent, or up to the
    line ``stop``), dedented so it runs on its own."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip() == first)
    indent = len(first) - len(first.lstrip())
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if stop is not None and line.rstrip() == stop:
            break
        if stop is None and line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    return textwrap.dedent("\n".join(block))


def run_original_loading(path: Path, mode: str, tmp_path: Path, load=None) -> dict:
    """Execute run.py's own model-building and checkpoint-loading lines on ``path``; ``load``
    replaces its ``torch.load`` (to feed it what our loader read)."""
    source = original_source("run.py")
    model = original_module("common/model.py", tmp_path)
    generators = original_module("common/generators.py", tmp_path)
    args = types.SimpleNamespace(
        architecture=",".join(map(str, SMALL_WIDTHS)), channels=SMALL_CHANNELS, causal=False,
        dropout=0.25, dense=False, disable_optimizations=False, stride=1,
        checkpoint=str(path.parent), evaluate=path.name if mode == "evaluate" else "",
        resume=path.name if mode == "resume" else "",
    )  # fmt: skip
    poses_2d = [np.random.default_rng(0).normal(size=(30, 17, 2)).astype("float32")]
    torch_for_run_py = torch if load is None else types.SimpleNamespace(load=load, cuda=torch.cuda)
    scope = {
        "args": args, "np": np, "torch": torch_for_run_py, "os": __import__("os"),
        "TemporalModel": model.TemporalModel,
        "TemporalModelOptimized1f": model.TemporalModelOptimized1f,
        "poses_valid_2d": poses_2d,
        "dataset": types.SimpleNamespace(
            skeleton=lambda: types.SimpleNamespace(num_joints=lambda: 17)
        ),
        "generators": generators,
    }  # fmt: skip
    exec(
        run_py_lines(
            source,
            "filter_widths = [int(x) for x in args.architecture.split(',')]",
            stop="receptive_field = model_pos.receptive_field()",
        ),
        scope,
    )
    exec(run_py_lines(source, "if args.resume or args.evaluate:"), scope)
    if mode == "resume":
        pad = (scope["model_pos"].receptive_field() - 1) // 2
        scope["semi_supervised"] = False
        scope["lr"] = 1e-3
        # run.py L264 and L287: the optimizer and training generator --resume restores into
        scope["optimizer"] = torch.optim.Adam(
            scope["model_pos_train"].parameters(), lr=1e-3, amsgrad=True
        )
        scope["train_generator"] = generators.ChunkedGenerator(
            8, None, [np.zeros((30, 17, 3))], poses_2d, 1, pad=pad, shuffle=True
        )
        exec(run_py_lines(source, "    if args.resume:"), scope)
        scope["first_batch"] = next(scope["train_generator"].next_epoch())  # shuffles
    return scope


@needs_mirror
@pytest.mark.parametrize("kind", ["final", "resume", "semi"])
def test_original_run_py_evaluates_vidmine_files(vidmine_files, kind, tmp_path, capsys):
    scope = run_original_loading(vidmine_files[kind], "evaluate", tmp_path)
    ckpt = load_checkpoint(vidmine_files[kind])
    assert f"This model was trained for {ckpt['epoch']} epochs" in capsys.readouterr().out
    ours = load_lifter(vidmine_files[kind]).model
    x = torch.from_numpy(scope["poses_valid_2d"][0][None])
    with torch.no_grad():
        scope["model_pos"].eval()
        diff = (scope["model_pos"](x) - ours(x)).abs().max().item()
    assert diff < 1e-5, diff
    assert (scope["model_traj"] is not None) == (kind == "semi")


@needs_mirror
@pytest.mark.parametrize("kind", ["final", "resume"])
def test_original_run_py_resumes_vidmine_files(vidmine_files, kind, tmp_path, capsys):
    scope = run_original_loading(vidmine_files[kind], "resume", tmp_path)
    ckpt = load_checkpoint(vidmine_files[kind])
    assert scope["epoch"] == ckpt["epoch"] and scope["lr"] == ckpt["lr"]
    assert "The optimizer will be reinitialized" in capsys.readouterr().out


@needs_mirror
def test_original_run_py_resumes_its_own_file_through_our_loader(tmp_path):
    """Contrast: a run.py file carries the Adam state and the RandomState. run.py's own
    torch.load on current torch refuses it; fed our loader's result, the very lines of its
    --resume restore both and its generator shuffles as the writer's would have."""
    original = original_module("common/model.py", tmp_path)
    trained = original.TemporalModelOptimized1f(17, 2, 17, SMALL_WIDTHS, channels=SMALL_CHANNELS)
    optimizer = torch.optim.Adam(trained.parameters(), lr=1e-3, amsgrad=True)
    trained(torch.randn(4, 9, 17, 2)).square().mean().backward()
    optimizer.step()
    written = run_py_checkpoint(trained.state_dict(), epoch=20, optimizer=optimizer.state_dict())
    path = save_like_run_py(written, tmp_path / "epoch_20.bin", "1.26")
    with pytest.raises(pickle.UnpicklingError, match="__randomstate_ctor"):
        run_original_loading(path, "resume", tmp_path)

    scope = run_original_loading(path, "resume", tmp_path, load=lambda f, **_: load_checkpoint(f))
    assert scope["epoch"] == 20 and scope["lr"] == written["lr"]
    restored = scope["optimizer"].state_dict()["state"]
    assert torch.equal(restored[0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    pad = (scope["model_pos"].receptive_field() - 1) // 2
    writer = scope["generators"].ChunkedGenerator(
        8, None, [np.zeros((30, 17, 3))], scope["poses_valid_2d"], 1, pad=pad, shuffle=True
    )
    writer.set_random_state(written["random_state"])
    np.testing.assert_array_equal(scope["first_batch"][2], next(writer.next_epoch())[2])


# ------------------------------------------------------------------ the published architecture
def run_vidmine(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vidmine", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.slow
def test_lift_and_evaluate_a_published_architecture_file(tmp_path):
    """pretrained_h36m_detectron_coco.bin's shape (INFERENCE.md: COCO-17 in, H36M-17 out,
    -arc 3,3,3,3,3, default 1024 channels; 16,952,371 parameters), written like a 2019
    run.py (numpy 1.16, legacy torch format) with random weights, through the user's
    commands; and an h36m-input epoch file as today's run.py writes it (numpy 2, zip)."""
    widths = [3, 3, 3, 3, 3]
    coco = save_like_run_py(
        run_py_checkpoint(original_state_dict(widths)),
        tmp_path / "pretrained_h36m_detectron_coco.bin",
        numpy_flavour="1.16",
        legacy_format=True,
    )
    walk, _, _ = synthetic_track("Walk", frames=60, seed=1)
    squat, _, _ = synthetic_track("Squat", frames=25, seed=2)
    entries = [
        CustomEntry("walk.mp4", 1280, 720, interpolate_missing(walk)),
        CustomEntry("squat.mp4", 640, 480, interpolate_missing(squat)),
    ]
    tracks = write_custom_2d(tmp_path / "data_2d_custom_demo.npz", "demo", entries)
    out = tmp_path / "lifted"
    done = run_vidmine(
        "lifter", "lift", "--model", str(coco), "--model-layout", "coco", "--input", str(tracks),
        "--out-dir", str(out), "--device", "cpu", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for name, frames in (("walk.mp4", 60), ("squat.mp4", 25)):
        poses = np.load(out / f"{name}.npz")["poses_3d"]
        assert poses.shape == (frames, 17, 3) and np.isfinite(poses).all()
        assert poses[:, 1:].std() > 0  # a real forward pass, not zeros

    epoch = save_like_run_py(
        run_py_checkpoint(original_state_dict(widths), epoch=60), tmp_path / "epoch_60.bin"
    )
    metrics = tmp_path / "metrics.json"
    done = run_vidmine(
        "lifter", "evaluate", "--model", str(epoch), "--model-layout", "h36m",
        "--out-json", str(metrics), "--device", "cpu", "--synthetic-frames", "40", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(metrics.read_text())
    assert result["data"]["input_layout"] == "h36m"
    assert all(np.isfinite(v) and v > 0 for v in result["overall"].values())


def test_evaluate_refuses_data_in_another_layout_than_the_model(tmp_path):
    from vidmine.lifter import cli

    state = original_state_dict(SMALL_WIDTHS, channels=SMALL_CHANNELS)
    model = save_like_run_py(run_py_checkpoint(state), tmp_path / "pretrained_h36m_cpn.bin")
    argv = ["evaluate", "--model", str(model), "--out-json", str(tmp_path / "m.json")]
    argv += ["--model-layout", "h36m", "--input-layout", "coco", "--synthetic-frames", "20"]
    with pytest.raises(FormatError) as err:
        cli.main(argv)
    assert str(err.value) == (
        f"{model}: the model takes h36m 2D, the evaluation data are coco "
        "(set --model-layout or --input-layout to match)"
    )
    assert not (tmp_path / "m.json").exists()
