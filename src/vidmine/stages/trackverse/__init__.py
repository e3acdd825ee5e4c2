"""TrackVerse: per-video records (``stage``), the dataset's track table, index and curated
subsets (``gather``, ``curation``)."""
