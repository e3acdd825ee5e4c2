"""Importers: other projects' pose data as vidmine track tables (and lifter arrays).

* :mod:`vidmine.imports.common` - refusing one input with its reason (``refused.tsv``).
* :mod:`vidmine.imports.kinetics` - Temporal-3D-Pose-Kinetics pickles -> track tables and the
  Kinetics lifter npz (:func:`~vidmine.imports.kinetics.load_kinetics_lifter` reads it back).
* :mod:`vidmine.imports.instavariety` - InstaVariety per-frame OpenPose JSON -> track tables.

Files are imported one by one: a refused or malformed file is recorded with its reason
(returned, logged and written to ``refused.tsv``) and the rest go on, because one bad download
must not lose a whole batch. The file formats themselves are read by :mod:`vidmine.formats`.
"""
