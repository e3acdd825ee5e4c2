"""Download: yt-dlp fetches each manifest URL into the private zone (``stage``); the download
report says what the dataset lost and why (``gather``, ``report``)."""
