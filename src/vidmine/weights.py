"""Model weights from a path or an official URL, cached and checked against a SHA-256.

Every GPU backend (cartoon classifier, RAFT, keypoint R-CNN, ...) resolves its weights here, so
there is one cache (``$VIDMINE_CACHE``, default ``~/.cache/vidmine``), one download path (atomic,
with a checksum) and one kind of error message saying how to get the file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vidmine.io import atomic_path


class WeightsError(RuntimeError):
    """Weights that cannot be had; the message says which file and how to get it."""


def refused_pickle_reason(error: Exception) -> str:
    """torch's weights-only refusal (a paragraph) as one line: the global the file names."""
    named = re.search(r"(?:unsupported global: |unsupported )GLOBAL ([\w.]+)", str(error), re.I)
    if named:
        return f"it would call {named[1]} (weights-only loading runs no pickled code)"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return (lines[-2] if len(lines) > 1 else lines[0] if lines else type(error).__name__)[:300]


@dataclass(frozen=True)
class WeightSource:
    """One weights file a configured backend loads: what it is for, where it comes from (a path
    or an http(s) URL) and its SHA-256 (or a prefix) when known. Stage folders list theirs in
    ``weights.py`` (``weight_sources(settings)``) so that ``vidmine fetch-weights`` can fill the
    cache on a host with network before jobs run on offline compute nodes."""

    what: str
    source: str
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return urlparse(self.source).scheme in ("http", "https")

    def cached_path(self, cache: Path | None = None) -> Path:
        """Where ``resolve_weights`` keeps (or finds) this file."""
        if self.is_url:
            return cached_download(self.source, cache)
        return Path(self.source).expanduser()


def torchvision_weights_url(enum: Any, weights: str) -> str:
    """A torchvision weights name of ``enum`` (``DEFAULT``, ``IMAGENET1K_V1``, optionally
    prefixed ``<Enum>.``) as its official URL; any other string (a path or URL) unchanged."""
    name = str(weights).removeprefix(f"{enum.__name__}.")
    if name == "DEFAULT":
        return enum.DEFAULT.url
    if name in enum.__members__:
        return enum[name].url
    return str(weights)


def cache_dir() -> Path:
    return Path(os.environ.get("VIDMINE_CACHE", Path.home() / ".cache" / "vidmine")) / "weights"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, sha256: str | None) -> None:
    if sha256 and not sha256_of(path).startswith(sha256.lower()):
        raise WeightsError(f"{path}: SHA-256 does not match {sha256} (corrupt or wrong file)")


def _download(url: str, dest: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
            with open(tmp, "wb") as handle:
                while block := response.read(1 << 20):
                    handle.write(block)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise WeightsError(
            f"cannot download weights {url}: {exc}; on a compute node without network, run "
            "`vidmine fetch-weights` first on a host with network (same $VIDMINE_CACHE), or "
            "download the file by hand and set its path in the config"
        ) from exc


def cached_download(url: str, cache: Path | None = None) -> Path:
    """The cache file of a weights URL (its file name, under ``cache`` or the default cache)."""
    return (cache or cache_dir()) / Path(urlparse(url).path).name


def sha256_from_file_name(source: str) -> str | None:
    """The SHA-256 prefix in torchvision's file names (``<name>-<first 8+ hex digits>.pth``),
    or None for a file named otherwise."""
    match = re.search(r"-([0-9a-f]{8,64})\.pth?$", Path(urlparse(source).path).name)
    return match[1] if match else None


def resolve_weights(
    source: str, sha256: str | None = None, cache: Path | None = None, timeout: float = 60
) -> Path:
    """Local path of ``source`` (a file path or an http(s) URL), verified against ``sha256``.

    torchvision's official file names end in the first 8 hex digits of the SHA-256, so a prefix
    of the digest is accepted as the checksum.
    """
    if urlparse(source).scheme in ("http", "https"):
        dest = cached_download(source, cache)
        if not dest.exists():
            _download(source, dest, timeout)
        try:
            _check(dest, sha256)
        except WeightsError:
            dest.unlink(missing_ok=True)  # never keep a bad download in the cache
            raise
        return dest
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    _check(path, sha256)
    return path


def load_state_dict(path: str | Path) -> Any:
    """A weights file's tensors on the CPU, taken out of a training checkpoint's ``state_dict``
    entry where there is one. ``weights_only``: loading runs no pickled code."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"{path}: refused: {refused_pickle_reason(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        return state["state_dict"]
    return state
