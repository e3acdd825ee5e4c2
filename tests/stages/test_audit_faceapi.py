"""face-api's face SSD as an auditor (``audit.detectors.faceapi_ssd``): its weights read out of
the real npm tarball (downloaded into the weights cache from the npm registry on first use,
checked against its SHA-256), faces found on real photographs, small faces found only through
tiles, broken tarballs refused in one line."""

import io
import json
import tarfile

import cv2
import numpy as np
import pytest
import skimage.data
from privacy_faces import lfw_mosaic, match

from vidmine.config import validate_config
from vidmine.prefetch import weight_sources
from vidmine.stages.audit.backends import AuditEnsemble
from vidmine.stages.audit.faceapi import (
    FACE_API_SHA256,
    FACE_API_TARBALL,
    FaceApiSsd,
    FaceApiWeightsError,
    read_tfjs_weights,
    tile_origins,
)
from vidmine.stages.detect.backends.hog import box_iou
from vidmine.weights import resolve_weights

# faces.csv's hand-checked boxes of the two photographs
ASTRONAUT_FACE = np.array([180, 65, 271, 176], float)


@pytest.fixture(scope="module")
def tarball():
    return resolve_weights(FACE_API_TARBALL, FACE_API_SHA256)


@pytest.fixture(scope="module")
def model(tarball):
    return FaceApiSsd(read_tfjs_weights(tarball))


def test_the_tarball_reads_as_its_manifest_describes(tarball):
    tensors = read_tfjs_weights(tarball)
    assert len(tensors) == 151
    assert tensors["Output/extra_dim"].shape == (1, 5118, 4)
    assert tensors["MobilenetV1/Conv2d_13_pointwise/weights"].shape == (1, 1, 1024, 1024)
    # dequantised: uint8 codes times scale plus min, not the raw codes
    gamma = tensors["MobilenetV1/Conv2d_1_depthwise/BatchNorm/gamma"]
    assert gamma.dtype == np.float32 and 0 < gamma.max() < 4


def test_one_box_per_anchor_and_the_astronaut_found(model):
    boxes, scores = model.forward(np.zeros((512, 512, 3), np.uint8))
    assert boxes.shape == (5118, 4) and scores.shape == (5118,)  # 32x32x3 + (16..1)^2 x 6
    assert scores.max() < 0.5  # a black image holds no face
    found = model.detect(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), 0.5)
    assert len(found) == 1
    assert box_iou(found[:, :4], ASTRONAUT_FACE[None])[0, 0] > 0.5 and found[0, 4] > 0.9


def test_tiles_find_the_small_faces_the_whole_frame_misses(model):
    """The 100 LFW faces of 25 px on a 1300x650 page: 10 px at the network's 512 px input."""
    page = lfw_mosaic()
    whole = match(page, model.detect(page.image, 0.5)).hit.sum()
    tiled = match(page, model.detect_tiled(page.image, 0.5, 256)).hit.sum()
    print(f"LFW page at 0.5: whole frame {whole} of 100, 256 px tiles {tiled}")
    assert whole <= 10 and tiled >= 80


def test_the_auditor_reports_frame_pixels_and_is_fetched_ahead_when_enabled(tmp_path):
    settings = validate_config(
        {"datasets": {"d": {"source": {"type": "demo"},
                            "audit": {"detectors": {"faceapi_ssd": {"enabled": True}}}}}}
    )["datasets"]["d"]  # fmt: skip
    listed = [w for w in weight_sources(settings) if w.what.startswith("audit")]
    assert [(w.source, w.sha256) for w in listed] == [(FACE_API_TARBALL, FACE_API_SHA256)]
    default = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})["datasets"]["d"]
    assert not [w for w in weight_sources(default) if w.what.startswith("audit")]  # off

    ssd = {**settings["audit"]["detectors"]["faceapi_ssd"], "max_side": 512, "tile_side": 0}
    (auditor,) = AuditEnsemble({"faceapi_ssd": ssd}).auditors
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    big = cv2.resize(astronaut, (1024, 1024))  # downscaled to 512 inside, boxes scaled back
    (box,) = auditor.faces(big)
    assert box_iou(box[None, :4], ASTRONAUT_FACE[None] * 2)[0, 0] > 0.5


def test_tiles_cover_the_frame_to_its_edges():
    origins = tile_origins(650, 1300, 256)
    assert {y for y, _ in origins} == {0, 128, 256, 384, 394}
    assert max(x for _, x in origins) == 1300 - 256
    assert tile_origins(200, 250, 256) == [(0, 0)]


def test_a_broken_tarball_is_refused_in_one_line_naming_it(tmp_path):
    manifest = [{"paths": ["ssd_mobilenetv1_model.bin"],
                 "weights": [{"name": "w", "shape": [4, 4], "dtype": "float32"}]}]  # fmt: skip
    path = tmp_path / "face-api.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [
            ("ssd_mobilenetv1_model-weights_manifest.json", json.dumps(manifest).encode()),
            ("ssd_mobilenetv1_model.bin", b"\0" * 12),  # 3 floats where 16 are described
        ]:
            info = tarfile.TarInfo(f"package/model/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(FaceApiWeightsError) as refused:
        read_tfjs_weights(path)
    assert str(path) in str(refused.value) and "end early" in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(FaceApiWeightsError, match="no package/model/tiny"):
        read_tfjs_weights(path, "tiny_face_detector_model")
