"""Privacy audit: an independent face detector over every blurred clip, re-blur or drop
(``stage``); the released clip table (``gather``) and the audit summary (``report``)."""
