"""Few-shot action recognition and retrieval on VPD features, as VPD's ``recognize.py``
evaluates them (issue 19, part 3).

An embedding is good for VPD when sequences of it, compared frame by frame under dynamic time
warping, find the right action with very few labelled examples. So the evaluation is:

* features: one ``<video>.emb.pkl`` per track (read only through the restricted unpickler),
  densified per frame as VPD's ``action_dataset/load.py::group_by_frame`` does, optionally
  with every row scaled to unit length (VPD's ``--norm``);
* recognition: a 1-nearest-neighbour classifier under DTW, trained on ``n`` sampled sequences
  per class (``sample_embeddings``), over several seeded trials; the query's plain and
  flipped rows are matched against every training row, the nearest wins (``predict_n``);
  or VPD's GRU sequence classifier (``util/classifier.py``), trained anew per trial;
* retrieval: every query sequence ranks the others by DTW distance; hit@k (a same-label
  sequence among the first k) and precision@k (the fraction of the first k that share the
  label), as ``run_action_retrieval``.

VPD's DTW is the ``dtw-python`` package with Sakoe-Chiba's symmetric P=2 step pattern and its
N+M normalised distance, falling back to the plain symmetric2 pattern when no path fits the
slope limits. That package is not among vidmine's dependencies (and none installed does these
step patterns), so both recurrences are written here with numpy, all queries of one length
against all references in one batch.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidmine.embed.labelled import folder_videos
from vidmine.formats import FormatError
from vidmine.formats.vpd import VpdFeature, features_path, read_vpd_features

ALL_SHOTS = -1  # VPD's -ne -1: every training sequence
RETRIEVAL_KS = (1, 5, 10)
Sequences = Mapping[str, np.ndarray]  # track_id -> (T, D) or (T, rows, D) embeddings


# ------------------------------------------------------------------ loading


def densify(
    features: Sequence[VpdFeature], source: Any = "<features>"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame features -> (dense (max_frame + 1, ...) float64 array, bool present mask).

    Like VPD's ``group_by_frame``: a frame listed several times (several poses) gets the mean
    of its embeddings; frames before the first listed one stay zero and are not present; a
    gap between two listed frames is filled by linear interpolation. VPD weights that fill
    the wrong way round (the frame next to the earlier one takes mostly the later value,
    docs/formats/vpd.md "Embedding pickles"); here the weights fall linearly with the
    distance, so the fill runs continuously from one listed value to the next. A 1-D
    embedding stays (T, D); a (rows, D) one gives (T, rows, D).
    """
    if not features:
        raise FormatError(f"{source}: no frames")
    shape = np.shape(features[0].embedding)
    frames = np.array([int(f.frame) for f in features])
    dense = np.zeros((frames.max() + 1, *shape))
    counts = np.zeros(len(dense))
    for f in features:
        if np.shape(f.embedding) != shape:
            raise FormatError(
                f"{source}: frame {f.frame}: embedding {np.shape(f.embedding)}, first {shape}"
            )
        dense[f.frame] += f.embedding
        counts[f.frame] += 1
    present = counts > 0
    dense[present] /= counts[present].reshape(-1, *([1] * len(shape)))
    listed = np.flatnonzero(present)
    gaps = np.arange(listed[0], listed[-1] + 1)
    gaps = gaps[~present[gaps]]
    if len(gaps):
        after = listed[np.searchsorted(listed, gaps)]
        before = listed[np.searchsorted(listed, gaps) - 1]
        towards_after = ((gaps - before) / (after - before)).reshape(-1, *([1] * len(shape)))
        dense[gaps] = (1 - towards_after) * dense[before] + towards_after * dense[after]
    return dense, present


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """Every embedding row scaled to unit length (zero rows stay zero): VPD's ``--norm``."""
    length = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / np.where(length < 1e-12, 1.0, length)


def load_features(
    folder: str | os.PathLike, norm: bool = False, videos: Iterable[str] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``<folder>/<video>.emb.pkl`` -> {video: (dense features, present mask)} (:func:`densify`).

    A corrupt or malformed pickle stops the load with one line naming that file: a feature
    folder is written whole by one apply step, so a bad file means that step failed, and
    skipping it would quietly evaluate on fewer tracks. ``videos`` limits the load to those
    (each must exist).
    """
    names = folder_videos(folder) if videos is None else list(videos)
    out = {}
    for video in tqdm(names, desc=f"loading {Path(folder).name}", leave=False, disable=None):
        path = features_path(folder, video)
        if not path.is_file():
            raise FormatError(f"{path}: features of video {video!r} not found")
        dense, present = densify(read_vpd_features(path), path)
        out[video] = (normalize_rows(dense) if norm else dense, present)
    return out


def present_span(dense: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The frames from the first to the last present one: the zeros VPD leaves before a
    video's first embedded frame are not part of the motion."""
    listed = np.flatnonzero(present)
    return dense[listed[0] : listed[-1] + 1]


# ------------------------------------------------------------------ dynamic time warping


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("...d,...d->...", x, x)


class References:
    """DTW references stacked once, (K, M_max, D) zero-padded, with their lengths: a query
    is then compared with all of them in one matrix product."""

    def __init__(self, sequences: Sequence[np.ndarray]) -> None:
        self.lengths = np.array([len(r) for r in sequences])
        width = int(self.lengths.max()) if len(sequences) else 0
        dim = np.shape(sequences[0])[-1] if len(sequences) else 0
        self.padded = np.zeros((len(sequences), width, dim))
        for k, ref in enumerate(sequences):
            self.padded[k, : len(ref)] = ref
        self.squared = _squared_norms(self.padded)
        self.beyond = np.arange(width)[None, :] >= self.lengths[:, None]  # (K, M_max)

    def __len__(self) -> int:
        return len(self.lengths)

    def local_costs(self, queries: np.ndarray) -> np.ndarray:
        """Euclidean frame distances of Q queries of one length, (Q, N, D), laid out
        (N, Q x K, M_max) (query-major) so that the row-by-row recurrences below read
        contiguous memory and run all pairs at once; +inf beyond each reference's end (a
        padded cell can never lie on the path to (N - 1, M_k - 1), so the padding changes
        no distance)."""
        count, n, dim = queries.shape
        product = np.matmul(queries.reshape(-1, dim), self.padded.reshape(-1, dim).T)
        squared = _squared_norms(queries).reshape(-1, 1) + self.squared.reshape(1, -1) - 2 * product
        costs = np.sqrt(np.maximum(squared, 0.0)).reshape(count, n, *self.beyond.shape)
        costs[:, :, self.beyond] = np.inf
        return costs.transpose(1, 0, 2, 3).reshape(n, count * len(self), -1)


def _accumulate_symmetric_p2(d: np.ndarray) -> np.ndarray:
    """Sakoe-Chiba symmetric P=2 cumulative costs of (N, K, M) local costs.

    g(0, 0) = d(0, 0); a cell is reached by one diagonal step, g(i-1, j-1) + 2 d(i, j), or by
    the two slope-limited steps g(i-2, j-3) + 2 d(i-1, j-2) + 2 d(i, j-1) + d(i, j) and
    g(i-3, j-2) + 2 d(i-2, j-1) + 2 d(i-1, j) + d(i, j). Every step comes from an earlier
    row, so a whole row (and all K references) is computed at once: N numpy steps instead of
    N x M x K Python ones.
    """
    n, k, m = d.shape
    g = np.full((n, k, m), np.inf)
    g[0, :, 0] = d[0, :, 0]
    for i in range(1, n):
        row = g[i]
        row[:, 1:] = g[i - 1, :, :-1] + 2 * d[i, :, 1:]
        if i >= 2 and m >= 4:
            slope = g[i - 2, :, :-3] + 2 * d[i - 1, :, 1:-2] + 2 * d[i, :, 2:-1] + d[i, :, 3:]
            np.minimum(row[:, 3:], slope, out=row[:, 3:])
        if i >= 3 and m >= 3:
            slope = g[i - 3, :, :-2] + 2 * d[i - 2, :, 1:-1] + 2 * d[i - 1, :, 2:] + d[i, :, 2:]
            np.minimum(row[:, 2:], slope, out=row[:, 2:])
    return g


def _accumulate_symmetric2(d: np.ndarray) -> np.ndarray:
    """Symmetric2 cumulative costs: g(i, j) = min(g(i-1, j) + d, g(i-1, j-1) + 2 d,
    g(i, j-1) + d), g(0, 0) = d(0, 0).

    The horizontal step makes each row a running minimum: with S the row's prefix sums of
    d and c the best arrival from the row above, g(i, j) = S_j + min_{l <= j}(c_l - S_l),
    one ``minimum.accumulate`` per row instead of a loop over j.
    """
    g = np.empty(d.shape)
    g[0] = np.cumsum(d[0], axis=-1)
    for i in range(1, len(d)):
        arrive = g[i - 1] + d[i]
        arrive[:, 1:] = np.minimum(arrive[:, 1:], g[i - 1, :, :-1] + 2 * d[i, :, 1:])
        finite = np.isfinite(d[i])
        prefix = np.cumsum(np.where(finite, d[i], 0.0), axis=-1)
        g[i] = prefix + np.minimum.accumulate(arrive - prefix, axis=-1)
        g[i][~finite] = np.inf
    return g


STEP_PATTERNS = {"symmetricP2": _accumulate_symmetric_p2, "symmetric2": _accumulate_symmetric2}


CELLS_PER_BATCH = 2_000_000  # cumulative-cost cells per numpy batch: 16 MB per array


def dtw_distance_matrix(
    queries: Sequence[np.ndarray],
    references: Sequence[np.ndarray] | References,
    pattern: str = "symmetricP2",
) -> np.ndarray:
    """(Q, K) normalised DTW distances of (N_q, D) queries to (M_k, D) references: the
    cheapest warping path's weighted cost divided by N_q + M_k, +inf where the step pattern
    allows no path (P=2 needs 2/3 <= M/N <= 3/2 roughly). Same values as ``dtw-python``'s
    ``dtw(pairwise_distances(a, b), step_pattern=pattern).normalizedDistance``.

    Queries of one length are stacked with all references into one batch (a few, when the
    batch would pass :data:`CELLS_PER_BATCH`): one matrix product and N vector steps serve
    them all, where per-pair calls spent their time in overhead (and in BLAS threads
    fighting over small products).
    """
    if pattern not in STEP_PATTERNS:
        raise ValueError(f"DTW step pattern {pattern!r}: known {sorted(STEP_PATTERNS)}")
    if not isinstance(references, References):
        references = References([np.asarray(r, np.float64) for r in references])
    out = np.full((len(queries), len(references)), np.inf)
    if not len(references) or not len(queries):
        return out
    by_length: dict[int, list[int]] = defaultdict(list)
    for q, query in enumerate(queries):
        by_length[len(query)].append(q)
    lengths = references.lengths
    batches = []
    for n, members in sorted(by_length.items()):
        per_query = n * len(references) * references.padded.shape[1]
        size = max(1, CELLS_PER_BATCH // max(per_query, 1))
        batches += [(n, members[i : i + size]) for i in range(0, len(members), size)]
    for n, members in tqdm(batches, desc=f"DTW {pattern}", leave=False, disable=None):
        stacked = np.stack([np.asarray(queries[q], np.float64) for q in members])
        g = STEP_PATTERNS[pattern](references.local_costs(stacked))[-1]
        ends = g.reshape(len(members), len(references), -1)[:, np.arange(len(lengths)), lengths - 1]
        out[members] = ends / (n + lengths)
    return out


def dtw_distances(
    query: np.ndarray, references: Sequence[np.ndarray] | References, pattern: str = "symmetricP2"
) -> np.ndarray:
    """One (N, D) query's distances to each reference (:func:`dtw_distance_matrix`)."""
    return dtw_distance_matrix([query], references, pattern)[0]


def _rows(embeddings: np.ndarray) -> list[np.ndarray]:
    """A sequence's separate rows (plain, flipped, jitters) as (T, D) sequences."""
    return [embeddings] if embeddings.ndim == 2 else list(embeddings.transpose(1, 0, 2))


# ------------------------------------------------------------------ recognition


class SequenceDistances:
    """DTW distances from each test sequence to each training sequence, computed once and
    shared by every shot count and trial (VPD recomputes them per trial; the values are the
    same).

    A pair's distance is the smallest over the query's rows and the reference's rows: VPD's
    ``KnnModel`` keeps every row of a training sequence (plain, flipped) as its own example
    and ``predict_n`` matches every query row against all of them. With ``ensemble=False``
    only the query's first row is matched (VPD's ``--no_test_flip``).
    """

    def __init__(
        self, sequences: Sequences, test: Sequence[str], train: Sequence[str], ensemble: bool = True
    ) -> None:
        self.test, self.train = list(test), list(train)
        rows, owners = [], []
        for j, track in enumerate(self.train):
            for row in _rows(sequences[track]):
                rows.append(row)
                owners.append(j)
        self._references = References(rows)
        self._owners = np.array(owners)
        self._queries = [_rows(sequences[t])[: None if ensemble else 1] for t in self.test]
        self._tables: dict[str, np.ndarray] = {}

    def table(self, pattern: str = "symmetricP2") -> np.ndarray:
        """(test, train) distances under one step pattern (+inf: no path)."""
        if pattern not in self._tables:
            rows = [row for query in self._queries for row in query]
            owners = np.repeat(np.arange(len(self._queries)), [len(q) for q in self._queries])
            by_row = dtw_distance_matrix(rows, self._references, pattern)  # (rows, train rows)
            out = np.full((len(self.test), len(self.train)), np.inf)
            for i, row in zip(owners, by_row, strict=True):
                np.minimum.at(out[i], self._owners, row)
            self._tables[pattern] = out
        return self._tables[pattern]

    def nearest(self, candidates: Sequence[int]) -> np.ndarray:
        """Index (into ``train``) of each test sequence's nearest among ``candidates``; where
        none fits P=2's slope limits, the nearest under symmetric2, as VPD's fallback model."""
        cols = np.asarray(candidates)
        dist = self.table("symmetricP2")[:, cols]
        best = cols[np.argmin(dist, axis=1)]
        stuck = ~np.isfinite(dist).any(axis=1)
        if stuck.any():
            best[stuck] = cols[np.argmin(self.table("symmetric2")[np.ix_(stuck, cols)], axis=1)]
        return best


def sample_shots(
    train: Iterable[str], labels: Mapping[str, str], shots: int, rng: np.random.Generator
) -> list[str]:
    """``shots`` sequences of each class drawn without replacement (a class with fewer keeps
    all; ``shots`` <= 0 keeps everything), as VPD's ``sample_embeddings``."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for track in sorted(train):
        by_class[labels[track]].append(track)
    chosen = []
    for label in sorted(by_class):
        tracks = by_class[label]
        if 0 < shots < len(tracks):
            tracks = [tracks[i] for i in sorted(rng.choice(len(tracks), shots, replace=False))]
        chosen.extend(tracks)
    return chosen


def recognition_accuracy(
    distances: SequenceDistances, labels: Mapping[str, str], train: Sequence[str]
) -> float:
    """Fraction of the test sequences whose nearest sequence among ``train`` (1-NN, DTW) has
    their label."""
    index = {t: j for j, t in enumerate(distances.train)}
    nearest = distances.nearest([index[t] for t in train])
    pairs = zip(nearest, distances.test, strict=True)
    right = [labels[distances.train[j]] == labels[t] for j, t in pairs]
    return float(np.mean(right))


@dataclass(frozen=True)
class GruConfig:
    """VPD's GRU classifier (``util/classifier.py``: a 2-layer bidirectional GRU, attention
    pooling driven by the last hidden states, two batch-normalised dense layers, dropout 0.5,
    input dropout 0.2, AdamW at 1e-3, batches of 50, cosine learning rate restarted every
    tenth of the run). VPD trains 500 epochs at hidden size 128; the defaults here are sized
    for a CPU."""

    hidden: int = 64
    epochs: int = 60
    batch_size: int = 50
    learning_rate: float = 1e-3
    threads: int | None = None  # torch's CPU threads, as the lifter's TrainConfig.threads


def _gru_network(dim: int, classes: int, hidden: int) -> Any:
    """The network of :class:`GruConfig` (torch is imported only when it is used)."""
    import torch
    from torch import nn

    class AttentionGru(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop_in = nn.Dropout(0.2)
            self.gru = nn.GRU(dim, hidden, num_layers=2, batch_first=True, bidirectional=True)
            self.attention = nn.Sequential(nn.Linear(4 * hidden, 2 * hidden), nn.ReLU())
            self.head = nn.Sequential(
                nn.BatchNorm1d(2 * hidden),
                nn.Dropout(0.5),
                nn.Linear(2 * hidden, 2 * hidden),
                nn.ReLU(),
                nn.BatchNorm1d(2 * hidden),
                nn.Dropout(0.5),
                nn.Linear(2 * hidden, classes),
            )

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            packed = nn.utils.rnn.pack_padded_sequence(
                self.drop_in(x), lengths, batch_first=True, enforce_sorted=False
            )
            out, last = self.gru(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=0.0)
            query = self.attention(last.permute(1, 0, 2).reshape(len(x), -1))  # (B, 2h)
            scores = torch.bmm(out, query.unsqueeze(2))  # (B, T, 1)
            # VPD's padded frames score 0 and so take attention weight; here they take none
            padding = torch.arange(out.shape[1])[None, :] >= lengths[:, None]
            weights = torch.softmax(scores.masked_fill(padding.unsqueeze(2), -torch.inf), dim=1)
            return self.head(torch.bmm(out.permute(0, 2, 1), weights).squeeze(2))

    return AttentionGru()


def _padded_batch(rows: Sequence[np.ndarray]) -> tuple[Any, Any]:
    import torch

    lengths = torch.tensor([len(r) for r in rows])
    batch = torch.zeros(len(rows), int(lengths.max()), rows[0].shape[-1])
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.as_tensor(row, dtype=torch.float32)
    return batch, lengths


def gru_accuracy(
    sequences: Sequences,
    labels: Mapping[str, str],
    train: Sequence[str],
    test: Sequence[str],
    cfg: GruConfig = GruConfig(),
    seed: int = 0,
) -> float:
    """Train VPD's GRU classifier on ``train`` (every row of a sequence, plain and flipped,
    is its own example) and score ``test``, averaging the softmax over a query's rows
    (``predict_n``). VPD keeps the epoch that scores best on a validation set, which for
    FineGym and Diving48 is the test set; here the last epoch is used, so test labels never
    choose the model."""
    import torch

    classes = sorted({labels[t] for t in train})
    rows = [(row, classes.index(labels[t])) for t in train for row in _rows(sequences[t])]
    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # small GRU batches: extra threads only contend
    try:
        net = _train_gru(rows, len(classes), cfg, seed)
        right = 0
        with torch.no_grad():
            for track in test:
                x, lengths = _padded_batch(_rows(sequences[track]))
                scores = torch.softmax(net(x, lengths), dim=1).mean(dim=0)
                right += classes[int(scores.argmax())] == labels[track]
    finally:
        torch.set_num_threads(previous_threads)  # the caller's budget, not ours, afterwards
    return right / len(test)


def _train_gru(rows: list[tuple[np.ndarray, int]], classes: int, cfg: GruConfig, seed: int) -> Any:
    """The trained network, in eval mode."""
    import torch
    import torch.nn.functional as F  # noqa: N812 (torch's own convention)

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = _gru_network(rows[0][0].shape[-1], classes, cfg.hidden)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate)
    steps = max(1, cfg.epochs // 10) * math.ceil(len(rows) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, steps)
    net.train()
    for _ in tqdm(range(cfg.epochs), desc="GRU epochs", leave=False, disable=None):
        order = torch.randperm(len(rows), generator=generator).tolist()
        for start in range(0, len(rows), cfg.batch_size):
            chunk = [rows[i] for i in order[start : start + cfg.batch_size]]
            if len(chunk) < 2:  # batch norm needs two examples
                continue
            x, lengths = _padded_batch([r for r, _ in chunk])
            loss = F.cross_entropy(net(x, lengths), torch.tensor([y for _, y in chunk]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return net.eval()


CLASSIFIERS = ("dtw", "gru")


def few_shot_accuracy(
    sequences: Sequences,
    labels: Mapping[str, str],
    split: Mapping[str, str],
    shots: Sequence[int] = (1, 5, ALL_SHOTS),
    trials: int = 5,
    seed: int = 0,
    ensemble: bool = True,
    classifier: str = "dtw",
    gru: GruConfig = GruConfig(),
) -> dict[str, dict[str, Any]]:
    """Test accuracy per shot count: {'1': {'mean', 'std', 'trials': [...]}, ..., 'all': ...}.

    Each trial samples its own training set (``seed``, shots, trial). ``classifier`` 'dtw'
    is 1-NN under DTW: with all shots its training set and answer are fixed, so that runs
    once. 'gru' is VPD's GRU classifier (:func:`gru_accuracy`), trained anew every trial.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"few-shot classifier {classifier!r}: known {list(CLASSIFIERS)}")
    train = sorted(t for t in sequences if split.get(t) == "train")
    test = sorted(t for t in sequences if split.get(t) == "test")
    if not train or not test:
        raise ValueError(f"few-shot: {len(train)} train and {len(test)} test sequences")
    distances = SequenceDistances(sequences, test, train, ensemble) if classifier == "dtw" else None
    out = {}
    for n in shots:
        accs = []
        for trial in range(trials if n > 0 or distances is None else 1):
            rng = np.random.default_rng([seed, max(n, 0), trial])
            chosen = sample_shots(train, labels, n, rng)
            if distances is not None:
                accs.append(recognition_accuracy(distances, labels, chosen))
            else:
                trial_seed = int(rng.integers(2**31))
                accs.append(gru_accuracy(sequences, labels, chosen, test, gru, trial_seed))
        out[shot_name(n)] = {
            "mean": float(np.mean(accs)),
            "std": float(np.std(accs)),
            "trials": accs,
        }
    return out


def shot_name(shots: int) -> str:
    """'1', '5', ... or 'all' for every training sequence."""
    return str(shots) if shots > 0 else "all"


# ------------------------------------------------------------------ retrieval


def retrieval(
    sequences: Sequences,
    labels: Mapping[str, str],
    ks: Sequence[int] = RETRIEVAL_KS,
    queries: Iterable[str] | None = None,
) -> dict[str, float]:
    """hit@k and precision@k (fractions) of each query against all other sequences.

    As ``run_action_retrieval``: a sequence's rows are concatenated per frame (T, rows x D),
    the others are ranked by symmetric P=2 DTW distance (no path ranks last), the query
    itself is left out; hit@k counts a query when a same-label sequence is among the first k,
    precision@k is the share of the first k with the query's label.
    """
    ids = sorted(sequences)
    flat = [sequences[t].reshape(len(sequences[t]), -1) for t in ids]
    everyone = References(flat)
    asked = ids if queries is None else sorted(queries)
    hits = {k: 0 for k in ks}
    precision = {k: 0.0 for k in ks}
    table = dtw_distance_matrix([flat[ids.index(q)] for q in asked], everyone)
    for query, dist in zip(asked, table, strict=True):
        q = ids.index(query)
        dist[q] = np.nan  # the query itself: sorted after everything, then dropped
        ranked = np.argsort(dist, kind="stable")[:-1]
        same = np.array([labels[ids[i]] == labels[query] for i in ranked])
        for k in ks:
            hits[k] += bool(same[:k].any())
            precision[k] += float(same[:k].sum()) / k
    out = {f"hit@{k}": hits[k] / len(asked) for k in ks}
    out.update({f"prec@{k}": precision[k] / len(asked) for k in ks})
    return out


# ------------------------------------------------------------------ evaluation and plot


def evaluate_features(
    folder: str | os.PathLike,
    labels: Mapping[str, str],
    split: Mapping[str, str],
    shots: Sequence[int] = (1, 5, ALL_SHOTS),
    trials: int = 5,
    seed: int = 0,
    norm: bool = False,
    ks: Sequence[int] = RETRIEVAL_KS,
    classifier: str = "dtw",
    gru: GruConfig = GruConfig(),
) -> dict[str, Any]:
    """Few-shot recognition and retrieval of one features folder: a JSON-able dict.

    ``labels`` (track_id -> label) picks the tracks; each must have a file in the folder and
    a 'train' / 'test' entry in ``split``. Retrieval queries every labelled track against
    all others. ``classifier``: 'dtw' (1-NN) or 'gru' (:class:`GruConfig`).
    """
    tracks = sorted(labels)
    unsplit = [t for t in tracks if split.get(t) not in ("train", "test")]
    if unsplit:
        raise ValueError(f"{folder}: track {unsplit[0]!r} is in neither train nor test split")
    loaded = load_features(folder, norm=norm, videos=tracks)
    sequences = {t: present_span(*loaded[t]) for t in tracks}
    classes = sorted(set(labels.values()))
    return {
        "features": str(folder),
        "norm": norm,
        "tracks": len(tracks),
        "train": sum(split[t] == "train" for t in tracks),
        "test": sum(split[t] == "test" for t in tracks),
        "classes": len(classes),
        "chance": 1 / len(classes),
        "classifier": classifier,
        "few_shot": few_shot_accuracy(
            sequences, labels, split, shots, trials, seed, classifier=classifier, gru=gru
        ),
        "retrieval": retrieval(sequences, labels, ks),
    }


def plot_accuracy_vs_shots(
    results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike
) -> Path:
    """Accuracy (mean +- std over trials) against shots, one line per feature set, e.g.
    {'raw 2D': metrics, 'teacher': metrics, 'student': metrics} from :func:`evaluate_features`,
    to a PNG; chance is drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    names: list[str] = []
    for name, metrics in results.items():
        few = metrics["few_shot"]
        names = names if len(names) >= len(few) else list(few)
        mean = [few[s]["mean"] for s in few]
        std = [few[s]["std"] for s in few]
        ax.errorbar(range(len(few)), mean, yerr=std, marker="o", capsize=3, label=name)
    chance = [m["chance"] for m in results.values()]
    if chance:
        ax.axhline(chance[0], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("training sequences per class")
    ax.set_ylabel("test accuracy (1-NN, DTW)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
