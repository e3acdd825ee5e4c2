"""Filter: cartoon, quality and motion scores per clip, keep or drop (``stage``, scorers in
``backends/``); its report items (``report``)."""
