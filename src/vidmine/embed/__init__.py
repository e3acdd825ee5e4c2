"""VPD's learning side: the VIPE* pose-embedding teacher, the RGB + flow student distilled from
it, and few-shot action recognition and retrieval on their features (issue 19; docs/embed.md).

Importing the package loads nothing heavy.
"""
