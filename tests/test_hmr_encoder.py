"""HMR's image encoder (TF-slim resnet_v2_50 in torch) and the TensorFlow checkpoint reader.

tests/data/tf_resnet_v2_tiny/ was written by TensorFlow 2.15 and TF-slim 1.1.0
(scripts/make_tf_resnet_fixture.py): a thin resnet_v2 with random weights, the features TF-slim
computed with it, and the variable list of the full resnet_v2_50. So the reader is checked
against TensorFlow's own bytes and the torch network against TensorFlow's own outputs, without
TensorFlow here. HMR's real weights are not in the tests (a large download); the full-size
network is tested with random weights.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vidmine.exports.hmr_encoder import (
    RESNET_V2_50_BLOCKS,
    HmrEncoder,
    ResNetV2,
    load_encoder_state,
    state_dict_from_tf,
    tf_name,
)
from vidmine.formats import FormatError
from vidmine.formats.tf_checkpoint import TFCheckpoint
from vidmine.weights import WeightsError

FIXTURE = Path(__file__).parent / "data" / "tf_resnet_v2_tiny"
TINY_BLOCKS = ((4, 2, 2), (8, 2, 2), (8, 1, 2), (16, 2, 1))  # as in the fixture script
# TF-slim resnet_v2_50(num_classes=None)'s trainable parameters, counted by TensorFlow
# (the sum over the "trainable" lines of resnet_v2_50_variables.txt).
RESNET_V2_50_TRAINABLE = 23_519_360


def _tf_variables() -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for line in (FIXTURE / "resnet_v2_50_variables.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        name, shape, kind = line.split()
        out[name] = (tuple(int(d) for d in shape.split(",") if d), kind)
    return out


def test_reader_reads_what_tensorflow_wrote():
    ckpt = TFCheckpoint(FIXTURE / "model.ckpt")
    assert ckpt.read("global_step") == 642561 and ckpt.read("global_step").dtype == np.int64
    assert ckpt.shapes["resnet_v2_50/conv1/weights"] == (7, 7, 3, 64)
    assert ckpt.shapes["3D_module/fc1/weights"] == (8, 3)
    for name, shape in ckpt.shapes.items():  # every tensor, its checksum verified
        value = ckpt.read(name)
        assert value.shape == shape and np.isfinite(value).all(), name
    var = ckpt.read("resnet_v2_50/postnorm/moving_variance")
    assert var.dtype == np.float32 and var.min() >= 0.5 and var.max() <= 2.0  # as written


def test_reader_refuses_corrupt_files_in_one_line(tmp_path):
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    good = TFCheckpoint(tmp_path / "model.ckpt")
    entry = good.entries["resnet_v2_50/postnorm/gamma"]
    raw[entry.offset] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="postnorm/gamma: checksum mismatch") as err:
        TFCheckpoint(tmp_path / "model.ckpt").read("resnet_v2_50/postnorm/gamma")
    assert "\n" not in str(err.value)
    index = tmp_path / "model.ckpt.index"
    raw_index = bytearray(index.read_bytes())
    raw_index[20] ^= 0xFF
    index.write_bytes(bytes(raw_index))
    with pytest.raises(FormatError, match="checksum mismatch"):
        TFCheckpoint(tmp_path / "model.ckpt")
    index.write_bytes(b"not a table")
    with pytest.raises(FormatError, match="no table magic number"):
        TFCheckpoint(tmp_path / "model.ckpt")
    with pytest.raises(FormatError, match="no variable 'nope'"):
        good.read("nope")


@pytest.mark.parametrize("size", [32, 37])  # 37: odd sizes, TensorFlow's asymmetric 'SAME'
def test_torch_network_computes_tf_slims_features(size):
    reference = np.load(FIXTURE / "reference.npz")
    net = ResNetV2(TINY_BLOCKS)
    net.load_state_dict(state_dict_from_tf(TFCheckpoint(FIXTURE / "model.ckpt"), net))
    x = torch.from_numpy(reference[f"input_{size}"]).permute(0, 3, 1, 2)
    with torch.inference_mode():
        got = net.eval()(x).numpy()
    want = reference[f"features_{size}"]
    assert got.shape == want.shape == (2, 64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_full_network_has_resnet_v2_50s_variables_and_output():
    # TF-slim's resnet_v2_50: base depths 64/128/256/512, 3/4/6/3 units, strides 2/2/2/1
    assert RESNET_V2_50_BLOCKS == ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1))
    net = ResNetV2()
    assert sum(p.numel() for p in net.parameters()) == RESNET_V2_50_TRAINABLE
    mapped = {
        tf_name(key): tuple(value.shape)
        for key, value in net.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    tf_vars = _tf_variables()
    assert set(mapped) == set(tf_vars)
    for name, (shape, _) in tf_vars.items():
        want = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape
        assert mapped[name] == want, name
    with torch.inference_mode():
        assert net.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 2048)


def _crops(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def test_random_encoder_gives_distinct_non_zero_phis_per_crop():
    torch.manual_seed(0)
    encoder = HmrEncoder(None, device="cpu", batch_size=2)
    crops = np.concatenate([_crops(2, 1), np.zeros((1, 224, 224, 3), np.uint8)])
    phis = encoder(crops)
    assert phis.shape == (3, 2048) and phis.dtype == np.float32
    assert np.all(np.abs(phis).sum(axis=1) > 0)
    assert not np.allclose(phis[0], phis[1]) and not np.allclose(phis[0], phis[2])
    np.testing.assert_allclose(encoder(crops[1:2]), phis[1:2], rtol=1e-4, atol=1e-5)
    # BGR in, RGB to the network: a crop and its channel-swapped copy differ
    assert not np.allclose(encoder(crops[:1, ..., ::-1].copy()), phis[:1])
    with pytest.raises(ValueError, match="expected"):
        encoder(np.zeros((1, 224, 224), np.uint8))


def _archive(tmp_path: Path, name: str = "hmr_noS5.ckpt-642561") -> Path:
    """An archive laid out as HMMR's hmmr_models.tar.gz (models/<checkpoint>.*), holding the
    fixture's checkpoint, a decoy and a link that must not be followed."""
    path = tmp_path / "hmmr_models.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(FIXTURE / "model.ckpt.index", f"models/{name}.index")
        tar.add(FIXTURE / "model.ckpt.data-00000-of-00001", f"models/{name}.data-00000-of-00001")
        tar.add(FIXTURE / "reference.npz", "models/neutral_smpl.pkl")
        link = tarfile.TarInfo(f"models/{name}.data-00000-of-00002")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    return path


def test_weights_come_from_the_archive_once_then_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDMINE_CACHE", str(tmp_path / "cache"))
    archive = _archive(tmp_path)
    reference = np.load(FIXTURE / "reference.npz")
    state = load_encoder_state(str(archive), None, "hmr_noS5.ckpt-642561", TINY_BLOCKS)
    converted = list((tmp_path / "cache" / "weights").glob("*.pt"))
    assert len(converted) == 1 and "hmr_noS5.ckpt-642561" in converted[0].name
    mtime = converted[0].stat().st_mtime_ns
    again = load_encoder_state(str(archive), None, "hmr_noS5.ckpt-642561", TINY_BLOCKS)
    assert converted[0].stat().st_mtime_ns == mtime  # read from the cache, not converted again
    assert set(again) == set(state)
    encoder = HmrEncoder(again, device="cpu", blocks=TINY_BLOCKS)
    net = encoder.net
    x = torch.from_numpy(reference["input_32"]).permute(0, 3, 1, 2)
    with torch.inference_mode():
        np.testing.assert_allclose(net(x).numpy(), reference["features_32"], rtol=1e-4, atol=1e-3)
    # a TF checkpoint prefix and a converted .pt are taken as they are
    prefix = load_encoder_state(str(FIXTURE / "model.ckpt"), None, "x", TINY_BLOCKS)
    assert all(torch.equal(prefix[k], state[k]) for k in state)
    assert set(load_encoder_state(str(converted[0]), None, "x", TINY_BLOCKS)) == set(state)


def test_weights_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDMINE_CACHE", str(tmp_path / "cache"))
    archive = _archive(tmp_path, name="other.ckpt-1")
    with pytest.raises(WeightsError, match="no checkpoint hmr_noS5.ckpt-642561"):
        load_encoder_state(str(archive), None, "hmr_noS5.ckpt-642561", TINY_BLOCKS)
    with pytest.raises(WeightsError, match="SHA-256 does not match"):
        load_encoder_state(str(archive), "00ff", "other.ckpt-1", TINY_BLOCKS)
    with pytest.raises(WeightsError, match="weights file not found"):
        load_encoder_state(str(tmp_path / "missing.tar.gz"), None, "x")
    with pytest.raises(FormatError, match="has shape .* expected"):  # tiny weights, full network
        load_encoder_state(str(FIXTURE / "model.ckpt"), None, "x")
    with pytest.raises(WeightsError, match="not a resnet_v2_50 encoder state dict"):
        HmrEncoder({"conv1.weight": torch.zeros(1)}, device="cpu")


def test_fetch_weights_lists_the_archive_only_when_phis_are_asked_for():
    from vidmine.config import validate_config
    from vidmine.prefetch import weight_sources

    def sources(hmmr):
        config = {"datasets": {"d": {"source": {"type": "demo"}, "hmmr": hmmr}}}
        return weight_sources(validate_config(config)["datasets"]["d"])

    assert sources({}) == []  # the default (and the demo): no phis, no weights, offline
    (archive,) = sources({"precomputed_phi": True})
    assert archive.source == "http://angjookanazawa.com/cachedir/hmmr/hmmr_models.tar.gz"
    assert archive.sha256 is None  # not published; hmmr.phis.sha256 sets one
    (pinned,) = sources({"precomputed_phi": True, "phis": {"sha256": "abc123"}})
    assert pinned.sha256 == "abc123"
    prefix = str(FIXTURE / "model.ckpt")
    assert sources({"precomputed_phi": True, "phis": {"weights": prefix}}) == []
