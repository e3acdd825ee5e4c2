"""Person and object detection backends behind one interface, and ByteTrack tracking.

Backends (``make_detector``): ``mediapipe`` (BlazePose from the mediapipe wheel, offline CPU
default), ``torchvision`` (keypoint R-CNN + a COCO box detector, batched on GPU) and
``detectron2`` (VideoPose3D's keypoint R-CNN config). Each turns a batch of RGB frames into
``Detections``; ``vidmine.detect.tracking`` links them into per-clip tracks.
"""

from vidmine.detect.base import BackendUnavailable, Detections, make_detector

__all__ = ["BackendUnavailable", "Detections", "make_detector"]
