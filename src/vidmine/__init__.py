"""vidmine: mine in-the-wild video for human pose and object-track datasets."""

__version__ = "0.1.0"
