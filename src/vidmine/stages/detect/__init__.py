"""Detect, pose and track: person (and object) detection backends behind one interface
(``detections``, ``backends/``), ByteTrack tracks (``tracking``), one track table per clip
(``stage``); tracks drawn on released frames and track lengths (``report``)."""
