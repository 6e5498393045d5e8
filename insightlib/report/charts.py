"""Charts in the Analysis Function palette, each with a headline title and alt text.

Every analysis module's ``plot()`` returns a matplotlib Figure built with ``new_figure``;
notebooks show it with ``show(fig, alt)`` so the alt text travels with the image into the
executed notebook (output metadata), the Quarto site and the HTML fallback.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: Government Analysis Function categorical palette, in order.
PALETTE = ["#12436D", "#28A197", "#801650", "#F46A25", "#3D3D3D", "#A285D1"]
DARK_BLUE, TURQUOISE, DARK_PINK, ORANGE, DARK_GREY, LIGHT_PURPLE = PALETTE
#: Reference lines (England, control limits) in grey so the council's own data stands out.
REFERENCE_GREY = "#BFBFBF"


def apply_style() -> None:
    plt.rcParams.update(
        {
            "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
            "axes.grid": True,
            "grid.color": "#E5E5E5",
            "font.size": 10,
            "figure.dpi": 110,
            "savefig.bbox": "tight",
            # text from data (a group or intervention name) is drawn as written, never as $math$
            "text.parse_math": False,
        }
    )


def new_figure(title: str, *, width: float = 7.5, height: float = 4.5, nrows: int = 1, ncols: int = 1, **kw):
    """A figure and axes in house style with a headline title (a sentence, not a label)."""
    apply_style()
    fig, ax = plt.subplots(nrows, ncols, figsize=(width, height), **kw)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
    return fig, ax


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def show(fig, alt: str) -> None:
    """Display a figure in a notebook with its alt text, then close it (no duplicate inline copy)."""
    from IPython.display import display

    png = base64.b64encode(to_png(fig)).decode("ascii")
    plt.close(fig)
    display({"image/png": png, "text/plain": alt}, metadata={"image/png": {"alt": alt}}, raw=True)
