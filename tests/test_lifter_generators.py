"""Batch generation: windows, edge replication, flips and causal shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidmine.lifter.data import PoseSequence
from vidmine.lifter.generators import (
    ChunkSampler,
    flip_2d,
    flip_3d,
    flip_intrinsics,
    unchunked_input,
)
from vidmine.lifter.skeleton import COCO, H36M


def _seq(n: int, seed: int) -> PoseSequence:
    rng = np.random.default_rng(seed)
    return PoseSequence(
        subject="S1",
        action=f"A{seed}",
        camera=0,
        pos2d=rng.normal(size=(n, 17, 2)).astype(np.float32),
        pos3d=rng.normal(size=(n, 17, 3)).astype(np.float32),
        intrinsics=rng.normal(size=9).astype(np.float32),
        res=(1000, 1000),
    )


def _reference_window(seq: PoseSequence, frame: int, pad: int, shift: int) -> np.ndarray:
    """The original's rule, written independently: clip indices = edge replication."""
    idx = np.clip(np.arange(frame - pad - shift, frame + pad - shift + 1), 0, len(seq) - 1)
    return seq.pos2d[idx]


@pytest.mark.parametrize("shift", [0, 4])
def test_sampler_windows_match_reference(shift):
    seqs = [_seq(9, 0), _seq(3, 1)]
    sampler = ChunkSampler(seqs, COCO, pad=4, causal_shift=shift, augment=True)
    assert len(sampler) == 2 * (9 + 3)  # every frame once plain, once mirrored
    batch = sampler.batch(torch.arange(len(sampler)))
    k = 0
    for flip in (False, True):
        for seq in seqs:
            for f in range(len(seq)):
                want = _reference_window(seq, f, 4, shift)
                target, cam = seq.pos3d[f : f + 1], seq.intrinsics
                if flip:
                    want, target, cam = flip_2d(want, COCO), flip_3d(target), flip_intrinsics(cam)
                np.testing.assert_array_equal(batch.inputs_2d[k].numpy(), want)
                np.testing.assert_array_equal(batch.target_3d[k].numpy(), target)
                np.testing.assert_array_equal(batch.intrinsics[k].numpy(), cam)
                # the 2D of the predicted frame is the window element for frame f itself
                np.testing.assert_array_equal(batch.target_2d[k, 0].numpy(), want[4 + shift])
                k += 1


def test_epoch_visits_every_chunk_once():
    sampler = ChunkSampler([_seq(20, 0), _seq(7, 1)], H36M, pad=2, augment=False)
    seen = []
    for batch in sampler.epoch(5, np.random.default_rng(0)):
        assert batch.inputs_2d.shape[1:] == (5, 17, 2) and batch.inputs_2d.is_contiguous()
        seen.extend(map(tuple, batch.target_3d[:, 0, 0].numpy().tolist()))
    assert len(seen) == 27 and len(set(seen)) == 27


def test_chunks_longer_than_one_frame():
    seq = _seq(10, 0)
    sampler = ChunkSampler([seq], H36M, pad=1, chunk=4, augment=False)
    batch = sampler.batch(torch.arange(len(sampler)))
    assert batch.inputs_2d.shape == (3, 6, 17, 2) and batch.target_3d.shape == (3, 4, 17, 3)
    np.testing.assert_array_equal(batch.target_3d[2].numpy(), seq.pos3d[6:10])  # kept inside


def test_flips_are_involutions_and_swap_sides():
    kp = np.random.default_rng(0).normal(size=(4, 17, 2))
    np.testing.assert_array_equal(flip_2d(flip_2d(kp, COCO), COCO), kp)
    pose3d = np.random.default_rng(1).normal(size=(4, 17, 3))
    np.testing.assert_array_equal(flip_3d(flip_3d(pose3d)), pose3d)
    # H36M joint 1 (right hip) becomes joint 4 (left hip) with x negated
    pose = np.zeros((1, 17, 3))
    pose[0, 1] = [0.2, 0.1, 3.0]
    np.testing.assert_array_equal(flip_3d(pose)[0, 4], [-0.2, 0.1, 3.0])


def test_unchunked_input_pads_and_adds_mirrored_copy():
    kp = np.arange(5 * 17 * 2, dtype=np.float32).reshape(5, 17, 2)
    x = unchunked_input(kp, COCO, pad=3, causal_shift=0, tta=True)
    assert x.shape == (2, 11, 17, 2)
    np.testing.assert_array_equal(x[0, :3].numpy(), np.repeat(kp[:1], 3, axis=0))
    np.testing.assert_array_equal(x[1, 3:8].numpy(), flip_2d(kp, COCO))
    causal = unchunked_input(kp, COCO, pad=3, causal_shift=3, tta=False)
    np.testing.assert_array_equal(causal[0, 6:].numpy(), kp)  # all padding before the clip
