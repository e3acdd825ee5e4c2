"""2D -> 3D human pose lifting with VideoPose3D's temporal convolution model.

Submodules: ``model`` (networks), ``metrics``, ``skeleton`` (joint layouts), ``camera``,
``data`` (datasets and readers), ``synthetic`` (procedural motion), ``generators``,
``train``, ``evaluate``, ``checkpoint``, ``lift`` / ``render`` (wild tracks), ``cli``.
Import them directly; this package keeps import time free of torch.
"""
