"""Batches for training and evaluation (docs/formats/videopose3d.md,
"Generators, padding and flipping"), built by vectorised gathers.

The original ChunkedGenerator builds every batch in a Python loop, padding and flipping
each chunk on the fly. Here all sequences are edge-padded and flipped once, up front,
and stored in one contiguous tensor (on the training device when it fits); a batch is a
single index gather. The semantics are the same: each output frame (chunk of ``chunk``
frames) appears once unflipped and, with augmentation, once flipped; 2D windows reach
``pad`` frames either side (shifted by ``causal_shift``) with edge replication.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidmine.lifter.data import PoseSequence
from vidmine.lifter.skeleton import H36M, Layout


def edge_pad(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Replicate the first/last frame ``left``/``right`` times along axis 0."""
    return np.concatenate([np.repeat(x[:1], left, 0), x, np.repeat(x[-1:], right, 0)], axis=0)


def flip_2d(kp: np.ndarray, layout: Layout) -> np.ndarray:
    """Mirror normalised 2D keypoints: negate x and swap left/right joints."""
    out = kp[..., layout.flip_permutation(), :].copy()
    out[..., 0] *= -1
    return out


def flip_3d(pos: np.ndarray) -> np.ndarray:
    """Mirror camera-space H36M-17 poses: negate x and swap left/right joints."""
    return flip_2d(pos, H36M)


def flip_intrinsics(k: np.ndarray) -> np.ndarray:
    """Mirror a camera: negate cx and the first tangential coefficient p1."""
    out = np.array(k, copy=True)
    out[..., 2] *= -1
    out[..., 7] *= -1
    return out


@dataclass
class Batch:
    """One training batch; tensors are contiguous and already on the training device."""

    inputs_2d: torch.Tensor  # (B, chunk + 2 pad, J_in, 2)
    target_3d: torch.Tensor | None  # (B, chunk, 17, 3), root = trajectory
    target_2d: torch.Tensor  # (B, chunk, J_in, 2): the 2D of the output frames
    intrinsics: torch.Tensor  # (B, 9)


class ChunkSampler:
    """Samples chunks of ``chunk`` output frames from a set of sequences.

    ``pad`` and ``causal_shift`` come from the model, so the 2D window of output frame f
    is ``[f - pad - causal_shift, f + chunk + pad - causal_shift)``.
    """

    def __init__(
        self,
        sequences: Sequence[PoseSequence],
        layout: Layout,
        pad: int,
        causal_shift: int = 0,
        chunk: int = 1,
        augment: bool = True,
        device: torch.device | str = "cpu",
        data_on_device: bool = True,
    ) -> None:
        if not sequences:
            raise ValueError("no sequences to sample from")
        self.pad, self.causal_shift, self.chunk = pad, causal_shift, chunk
        self.window = chunk + 2 * pad
        self.device = torch.device(device)
        self.data_on_device = data_on_device
        # host-resident data going to a GPU travels through pinned buffers, asynchronously
        self.pin_memory = self.device.type == "cuda" and not data_on_device
        self.labelled = all(s.pos3d is not None for s in sequences)
        flips = (False, True) if augment else (False,)
        self._build(sequences, layout, flips)

    def _build(self, sequences: Sequence[PoseSequence], layout: Layout, flips) -> None:
        """Pad, flip and concatenate every sequence once; index where each chunk starts."""
        left, right = self.pad + self.causal_shift, self.pad - self.causal_shift
        inputs, targets, cams, win_start, tgt_start, seq_of = [], [], [], [], [], []
        in_off = tgt_off = 0
        for flip in flips:
            for seq in sequences:
                kp = flip_2d(seq.pos2d, layout) if flip else seq.pos2d
                inputs.append(edge_pad(kp, left, right))
                if self.labelled:
                    targets.append(flip_3d(seq.pos3d) if flip else seq.pos3d)
                cams.append(flip_intrinsics(seq.intrinsics) if flip else seq.intrinsics)
                starts = self._chunk_starts(seq)
                win_start.append(in_off + starts)
                tgt_start.append(tgt_off + starts)
                seq_of.append(np.full(len(starts), len(cams) - 1))
                in_off += len(seq) + left + right
                tgt_off += len(seq)
        self.inputs = self._store(np.concatenate(inputs))
        self.targets = self._store(np.concatenate(targets)) if self.labelled else None
        self.cams = self._store(np.stack(cams))
        self.win_start, self.tgt_start, self.seq_of = (
            torch.from_numpy(np.concatenate(a)).long() for a in (win_start, tgt_start, seq_of)
        )
        self._windows = _sliding(self.inputs, self.window)
        self._chunks = _sliding(self.targets, self.chunk) if self.labelled else None
        self._centres = _sliding(self.inputs, self.chunk)

    def _chunk_starts(self, seq: PoseSequence) -> np.ndarray:
        n = len(seq)
        if n < self.chunk:
            raise ValueError(f"{seq.subject}/{seq.action}: {n} frames < chunk {self.chunk}")
        return np.minimum(np.arange(0, n, self.chunk), n - self.chunk)  # last chunk inside

    def _store(self, array: np.ndarray) -> torch.Tensor:
        """float32 tensor, on the training device unless told to keep data in host memory."""
        t = torch.from_numpy(array).float()
        return t if not self.data_on_device else t.to(self.device)

    def __len__(self) -> int:
        """Number of chunks per epoch (flipped copies included)."""
        return len(self.win_start)

    @property
    def frames(self) -> int:
        return len(self) * self.chunk

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(self, items: torch.Tensor) -> Batch:
        """Gather chunks ``items`` (indices into this sampler) into one batch."""
        dev = self.inputs.device
        win = self.win_start[items].to(dev, non_blocking=True)
        inputs = self._windows.index_select(0, win)
        # the 2D of the output frames sits pad + causal_shift frames into each window
        centre = self._centres.index_select(0, win + self.pad + self.causal_shift)
        target = None
        if self._chunks is not None:
            target = self._chunks.index_select(0, self.tgt_start[items].to(dev, non_blocking=True))
        cams = self.cams.index_select(0, self.seq_of[items].to(dev, non_blocking=True))
        return Batch(*(self._to_device(t) for t in (inputs, target, centre, cams)))

    def _to_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None or t.device == self.device:
            return t
        if self.pin_memory:
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One shuffled pass over all chunks."""
        order = torch.from_numpy(rng.permutation(len(self)))
        for i in range(0, len(order), batch_size):
            yield self.batch(order[i : i + batch_size])

    def endless(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """Shuffled passes forever (the unlabelled stream of semi-supervised training)."""
        while True:
            yield from self.epoch(batch_size, rng)


def _sliding(frames: torch.Tensor, length: int) -> torch.Tensor:
    """View (N - length + 1, length, ...) of all windows of consecutive frames, no copy.

    A window of consecutive frames is one contiguous block of memory, so gathering a batch
    of windows with ``index_select`` is a handful of block copies.
    """
    step = frames.stride(0)
    shape = (frames.shape[0] - length + 1, length, *frames.shape[1:])
    return frames.as_strided(shape, (step, *frames.stride()))


def unchunked_input(
    pos2d: np.ndarray, layout: Layout, pad: int, causal_shift: int, tta: bool
) -> torch.Tensor:
    """One whole sequence, edge-padded, as a batch of 1 (or 2 with the flipped copy)."""
    padded = edge_pad(pos2d, pad + causal_shift, pad - causal_shift)
    batch = [padded, flip_2d(padded, layout)] if tta else [padded]
    return torch.from_numpy(np.stack(batch)).float()
