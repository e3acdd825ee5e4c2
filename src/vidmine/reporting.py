"""What every stage's report items share: an HTML table page (every table cut to its first
``ROW_LIMIT`` rows, with the total and where the rest is), a tiled figure of frames, one way to
save a figure, and reading one frame of a released clip.

Each stage's report items live in its folder (``stages/<stage>/report.py``). Report pictures
read released clips (``clips/``) and tables only, never the private zone: the report is meant
to be shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vidmine.frames import read_frames_at  # noqa: E402
from vidmine.io import atomic_path, write_text_atomic  # noqa: E402

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}th{{background:#eee}}</style></head>
<body><h2>{title}</h2>{body}</body></html>
"""


# The most rows a report table shows: the page's size is bounded whatever the dataset's size;
# the rest is in the table file a section names.
ROW_LIMIT = 50


@dataclass(frozen=True)
class Section:
    """One table of a report page: ``frame`` already sorted most interesting first; at most
    ``limit`` rows are shown, then how many more there are and in which file (``source``)."""

    title: str
    frame: pd.DataFrame
    source: str = ""
    limit: int = ROW_LIMIT


def section_html(section: Section) -> str:
    """One section as HTML: its title, the first ``limit`` rows, and how many more where."""
    frame, total = section.frame, len(section.frame)
    shown = frame.head(section.limit)
    html = f"<h3>{escape(section.title)}</h3>" + shown.to_html(index=False, na_rep="")
    if total > len(shown):
        where = f" in {section.source}" if section.source else ""
        html += (
            f"<p><i>{len(shown):,} of {total:,} rows shown; "
            f"{total - len(shown):,} more rows{where}.</i></p>"
        )
    return html


def html_table_page(
    title: str,
    sections: list[Section | tuple[str, pd.DataFrame]],
    out: str | Path,
    intro: str = "",
) -> None:
    """An HTML page of tables, each cut to its section's row limit (``(title, frame)`` pairs
    get the default limit and name no source); ``intro``, a line of text above them."""
    parts = [s if isinstance(s, Section) else Section(*s) for s in sections]
    body = (f"<p>{escape(intro)}</p>" if intro else "") + "".join(section_html(s) for s in parts)
    write_text_atomic(out, PAGE.format(title=title, body=body))


def save_figure(fig: plt.Figure, out: str | Path, dpi: int = 80) -> None:
    """Lay out, write atomically as PNG, and free the figure."""
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def tile(images: list[tuple[np.ndarray, str]], title: str, out: str | Path) -> None:
    columns = 3
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, label) in zip(axes.flat, images, strict=False):
        ax.imshow(image[..., ::-1])
        ax.set_title(label, fontsize=9)
    if not images:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title)
    save_figure(fig, out)


def frame_at(path: Path, index: int) -> np.ndarray | None:
    """Frame ``index`` of a (released) clip, BGR; None when it cannot be decoded."""
    return read_frames_at(path, [index]).get(index)
