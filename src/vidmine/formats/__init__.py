"""Readers and writers for other projects' dataset formats (exports and imports).

Pure format code, no workflow wiring: each module turns vidmine's track table (``vidmine.tracks``)
into the exact files another project's training code loads, or reads that project's files back.
The facts followed (keys, shapes, dtypes, joint orders) are those of the pages in
``docs/formats/`` (index: docs/formats/README.md), which were read from the projects' code;
where code and README disagree, the code wins.

* :mod:`vidmine.formats.videopose3d` - VideoPose3D npz files (custom 2D, Detectron, Human3.6M).
* :mod:`vidmine.formats.hmmr` - HMMR / InstaVariety ``tf.train.Example`` tfrecords.
* :mod:`vidmine.formats.vpd` - VPD pose folders and crop file names.
* :mod:`vidmine.formats.kinetics` - Temporal-3D-Pose-Kinetics pickles (restricted unpickling).
* :mod:`vidmine.formats.instavariety` - InstaVariety OpenPose per-frame JSON tracks.

Every reader raises :class:`FormatError` (a ``ValueError``) with a one-line message that names
the file and what is wrong with it.
"""

from __future__ import annotations


class FormatError(ValueError):
    """A file does not have the layout its format requires (message: ``<file>: <problem>``)."""


def error_line(err: BaseException) -> str:
    """An error's message on one line (its type's name when it has none), for CLI output and
    the refused lists of exports and imports."""
    return " ".join(str(err).split()) or type(err).__name__
