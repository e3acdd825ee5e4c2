"""Optical flow between each crop and its previous-frame crop (``stage``, ``backends``); the
crop table (``gather``) and crops drawn with their flow (``report``)."""
