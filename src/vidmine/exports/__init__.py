"""Exports of a dataset folder into other projects' formats, one module per target.

* :mod:`vidmine.exports.common` - the dataset tables an export reads (checked, with a one-line
  error naming a missing or incomplete file), released person tracks, their rows and clips.
* :mod:`vidmine.exports.videopose3d` - VideoPose3D's ``data_2d_custom_<name>.npz``.
* :mod:`vidmine.exports.detectron` - Detectron-style per-clip npz (VideoPose3D's own input).
* :mod:`vidmine.exports.hmmr` - HMMR / InstaVariety tfrecords, train and test.
* :mod:`vidmine.exports.vpd` - VPD's pose, video and crop folders.
* :mod:`vidmine.exports.trackverse` - one domain of the TrackVerse database.
* :mod:`vidmine.exports.index` - the track index (one row per track; its one owner).

Every export builds ONE target from ``results/{dataset}/`` (a file, or a folder), so each is a
single Snakemake target and a single command. Targets are written atomically: a file through
:func:`vidmine.io.atomic_path`, a folder through :func:`vidmine.io.atomic_dir` (a hidden sibling
``.{name}.partial-<pid>`` renamed over the old one at the end), so a killed job never leaves a
half-built export that looks complete (``remove_partials`` sweeps what it leaves instead).

What is exported is the released product only: pixels come from ``released_clips.parquet``
(blurred and audited clips under ``clips/``), and pose exports (VideoPose3D, Detectron, HMMR,
VPD) take the person tracks of released clips. The index lists every track of every class,
with ``released`` saying which ones the other exports contain. Videos without tracks and
dropped clips simply give no entries. A missing input table raises ``FileNotFoundError`` whose
message is one line naming the file; a table that lacks columns raises
:class:`vidmine.formats.FormatError`. The file formats themselves are written by
:mod:`vidmine.formats`; the importers live in :mod:`vidmine.imports`.
"""
