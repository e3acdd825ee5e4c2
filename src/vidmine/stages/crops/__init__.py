"""Crops: VPD-style square person crops from the released clips (``stage``, ``geometry``)."""
