"""The filter's CLIP aesthetic backend (TrackVerse's ViT-L-14 + LAION linear head), run on a tiny
randomly initialised CLIP in OpenAI's key layout: loaded by URL from a local server with
checksums, as a TorchScript archive like OpenAI's official file, scored, and used to decide."""

import hashlib
import json
import warnings

import cv2
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from conftest import VideoServer
from vidmine.config import validate_config
from vidmine.frames import read_frames_at
from vidmine.layout import DatasetLayout
from vidmine.probing import probe_video
from vidmine.stages.filter.backends.aesthetic import (
    OPENAI_VIT_L14_URL,
    ClipAestheticScorer,
    clip_checksum,
    load_linear_head,
    openai_sha256,
)
from vidmine.stages.filter.stage import FilterStage
from vidmine.weights import WeightsError

TINY = "vidmine-tiny-ViT"
TINY_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 64, "heads": 1, "layers": 1},
}


def settings(**overrides):
    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}, "filter": overrides}}})
    return config["datasets"]["d"]["filter"]


def clip_item(path):
    facts = probe_video(path)
    keys = ("fps", "n_frames", "width", "height")
    return {"id": "c", "video_id": "v", "path": str(path), **{k: facts[k] for k in keys}}


OPENAI_KEYS = [  # as in OpenAI's ViT-L-14.pt, which open_clip's OpenAI loader reads
    "visual.class_embedding",
    "visual.conv1.weight",
    "visual.proj",
    "visual.transformer.resblocks.1.attn.in_proj_weight",
    "token_embedding.weight",
    "text_projection",
    "transformer.resblocks.0.attn.in_proj_weight",
]


def torchscript_archive(state: dict, path):
    """``state`` as a TorchScript archive, the form of OpenAI's official checkpoints (the loader
    only reads the archive's state dict, as it does for OpenAI's file)."""
    root = torch.nn.Module()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, torch.nn.Module())
            node = getattr(node, part)
        node.register_buffer(leaf, value.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        torch.jit.save(torch.jit.script(root), path)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random tiny CLIP ViT saved as a state dict and as a TorchScript archive, and a random
    LAION-style head for it; the tiny architecture registered with open_clip under TINY."""
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    state = open_clip.model.CLIP(**TINY_CONFIG).state_dict()
    assert all(key in state for key in OPENAI_KEYS)
    torch.save(state, folder / "tiny_clip.pt")
    # OpenAI's archives also carry these three, which the loader drops
    extras = {"input_resolution": 224, "context_length": 16, "vocab_size": 100}
    state = {**state, **{k: torch.tensor(v) for k, v in extras.items()}}
    torchscript_archive(state, folder / "tiny_clip_jit.pt")
    torch.save(torch.nn.Linear(32, 1).state_dict(), folder / "head.pth")
    return folder


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tiny_clip, http_server, tmp_path, monkeypatch):
    """Settings that fetch the tiny CLIP and head from the local server, checksums given."""
    monkeypatch.setenv("VIDMINE_CACHE", str(tmp_path / "cache"))
    VideoServer.files["tiny_clip"] = tiny_clip / "tiny_clip.pt"
    VideoServer.files["head"] = tiny_clip / "head.pth"
    return {
        "backend": "clip_linear",
        "model": TINY,
        "clip_weights": f"{http_server}/video/tiny_clip.pt",
        "clip_sha256": sha(tiny_clip / "tiny_clip.pt")[:16],
        "head_weights": f"{http_server}/video/head.pth",
        "head_sha256": sha(tiny_clip / "head.pth")[:16],
        "min_score": 4.0,
        "batch_size": 2,
    }


@pytest.fixture(scope="module")
def frames(demo_videos):
    return list(read_frames_at(demo_videos["carphone"], [0, 40, 80]).values())


def test_openai_url_carries_its_checksum_and_is_the_default():
    assert openai_sha256(OPENAI_VIT_L14_URL) == (
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"
    )
    assert openai_sha256("/data/ViT-L-14.pt") is None
    assert openai_sha256("http://127.0.0.1:8000/video/ViT-L-14.pt") is None
    aesthetic = settings()["aesthetic"]
    assert aesthetic["clip_weights"] == OPENAI_VIT_L14_URL and aesthetic["model"] == "ViT-L-14"
    assert aesthetic["backend"] == "none" and aesthetic["min_score"] == 4.0
    assert clip_checksum(aesthetic) == openai_sha256(OPENAI_VIT_L14_URL)  # checked by default
    assert clip_checksum({**aesthetic, "clip_sha256": "abcd1234"}) == "abcd1234"


def test_scores_are_the_head_on_normalised_embeddings(served, frames, tmp_path):
    scorer = ClipAestheticScorer(served)
    assert (tmp_path / "cache" / "weights" / "tiny_clip.pt").exists()
    scores = scorer.frame_scores(frames)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert np.ptp(scores) > 1e-4  # frames differ, so do their scores

    # the same numbers by hand: open_clip's transform, the image tower, L2 norm, the head file
    batch = scorer.batch(frames)
    reference = open_clip.image_transform(224, is_train=False)  # OpenAI's: bicubic, crop, mean/std
    rgb = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames]
    torch.testing.assert_close(batch, torch.stack([reference(image) for image in rgb]))
    with torch.inference_mode():
        raw = scorer.visual(batch.to(scorer.device)).float().cpu().numpy()
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=0.05)  # normalising matters
    head = torch.load(served_file(served["head_weights"], tmp_path), weights_only=True)
    weight, bias = head["weight"].numpy()[0], float(head["bias"][0])
    expected = (raw / np.linalg.norm(raw, axis=1, keepdims=True)) @ weight + bias
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert scorer(frames) == pytest.approx(float(expected.mean()), abs=1e-4)

    again = ClipAestheticScorer(served).frame_scores(frames)  # from the cache this time
    np.testing.assert_array_equal(again, scores)


def served_file(url: str, tmp_path):
    return tmp_path / "cache" / "weights" / url.rsplit("/", 1)[1]


def test_torchscript_archive_like_openais_gives_the_same_scores(served, tiny_clip, frames):
    from_state_dict = ClipAestheticScorer(served).frame_scores(frames)
    archive = {**served, "clip_weights": str(tiny_clip / "tiny_clip_jit.pt"), "clip_sha256": None}
    from_archive = ClipAestheticScorer(archive).frame_scores(frames)
    np.testing.assert_allclose(from_archive, from_state_dict, atol=1e-5)


@pytest.mark.parametrize("which", ["clip", "head"])
def test_wrong_checksum_is_one_line_naming_the_file_and_leaves_no_cache(served, tmp_path, which):
    with pytest.raises(WeightsError) as error:
        ClipAestheticScorer({**served, f"{which}_sha256": "0" * 64})
    message = str(error.value)
    name = "tiny_clip.pt" if which == "clip" else "head.pth"
    assert "SHA-256 does not match" in message and name in message and "\n" not in message
    assert not (tmp_path / "cache" / "weights" / name).exists()


def test_weights_of_another_architecture_are_refused(served):
    with pytest.raises(WeightsError, match="is not ViT-B-32"):
        ClipAestheticScorer({**served, "model": "ViT-B-32"})
    with pytest.raises(ValueError, match="not an open_clip ViT model"):
        ClipAestheticScorer({**served, "model": "no-such-model"})


def test_head_files_nested_or_not_and_mlp_heads_refused(tmp_path):
    torch.manual_seed(1)
    linear = torch.nn.Linear(32, 1)
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {f"linear.{k}": v for k, v in linear.state_dict().items()}}, nested)
    loaded = load_linear_head(nested, 32)
    assert torch.equal(loaded.weight, linear.weight) and torch.equal(loaded.bias, linear.bias)

    mlp = tmp_path / "mlp.pth"
    torch.save(
        torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Linear(16, 1)).state_dict(), mlp
    )
    with pytest.raises(WeightsError, match="expected one Linear"):
        load_linear_head(mlp, 32)
    with pytest.raises(WeightsError, match="head takes 32-d embeddings"):
        load_linear_head(nested, 768)


def constant_head(folder, bias: float):
    """A head that scores every frame ``bias``: zero weight."""
    path = folder / f"head_{bias:g}.pth"
    torch.save({"weight": torch.zeros(1, 32), "bias": torch.tensor([bias])}, path)
    return path


@pytest.mark.parametrize(("bias", "status"), [(5.0, "ok"), (3.0, "dropped")])
def test_filter_keeps_or_drops_on_the_mean_score(
    results, served, tmp_path, demo_videos, bias, status
):
    head = constant_head(tmp_path, bias)
    backend = {**served, "head_weights": str(head), "head_sha256": sha(head)}
    stage = FilterStage(DatasetLayout(results, "d"), "s00000", settings(aesthetic=backend))
    result = stage.process(clip_item(demo_videos["carphone"]))
    row = result.rows[0]
    assert result.status == status, row["flags"]
    assert row["aesthetic_score"] == pytest.approx(bias, abs=1e-5)
    assert ("low_aesthetic" in row["flags"].split(",")) == (bias < 4.0)
    if status == "dropped":
        assert result.reason == "low_aesthetic" and row["decision"] == "drop"


def test_backend_none_records_nan_and_decides_nothing(results, demo_videos):
    stage = FilterStage(DatasetLayout(results, "d"), "s00000", settings())
    assert stage.aesthetic is None
    row = stage.process(clip_item(demo_videos["carphone"])).rows[0]
    assert np.isnan(row["aesthetic_score"]) and "low_aesthetic" not in row["flags"]
