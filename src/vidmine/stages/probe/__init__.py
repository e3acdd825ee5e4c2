"""Probe: ffprobe facts of each download; unusable files fail here with their reason."""
