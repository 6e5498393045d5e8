"""Charts in the Analysis Function palette, each with a headline title and alt text.

Every analysis module's ``plot()`` returns a matplotlib Figure built with ``new_figure``;
notebooks show it with ``show(fig, alt)`` so the alt text travels with the image into the
executed notebook (output metadata), the Quarto site and the HTML fallback.
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

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


#: Width of an average character of the house font (DejaVu Sans) in ems, a little over its mean in English words,
#: so that a note wrapped by characters stays within the figure.
_EM_PER_CHARACTER = 0.55


def note(fig, text: str, x: float = 0.01, y: float = 0.02, fontsize: float = 7.5, **kw):
    """Small words under a chart (from ``x`` to the figure's right edge, hanging from ``y``), wrapped to the
    figure's width whenever it is drawn (to_png; the phone drawing is narrower). Wrapped by characters,
    not by measuring each word as matplotlib's ``wrap=True`` does, which was a sixth of a chart's drawing."""
    words = fig.text(x, y, text, fontsize=fontsize, ha="left", va="top", **kw)
    words.insight_note = (text, x, fontsize)
    return words


def _wrap_notes(fig) -> None:
    import textwrap

    width = fig.get_figwidth()
    for words in fig.texts:
        if hasattr(words, "insight_note"):
            text, x, size = words.insight_note
            words.set_text(textwrap.fill(text, max(20, int((1 - x) * width * 72 / (size * _EM_PER_CHARACTER)))))


#: Room (in pixels at the figure's dpi) drawn around a figure, so that what is drawn past its edges (labels, notes,
#: a legend beside it) lands on the canvas in the one drawing to_png makes; a whole number of pixels, so the
#: picture inside the figure is drawn exactly as without it.
EDGE_PIXELS = 440


def to_png(fig) -> bytes:
    """The chart as PNG, cut to its drawn area with the padding that savefig's tight bounding box (the style's
    savefig.bbox) gives it.

    Drawn once and cropped: savefig draws a figure twice for a tight box (once to measure, once to paint),
    and drawing was most of a report's chart time (issue 17). The figure is drawn on a canvas
    ``EDGE_PIXELS`` larger on every side (as savefig draws a tight box: the figure's own layout, the
    canvas moved), so what is drawn past its edges is painted too; the crop is the tight box widened to whole
    pixels, so the picture can sit up to a pixel from where savefig puts it. A chart drawn further out than
    that is saved by savefig."""
    from matplotlib import _tight_bbox
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    _wrap_notes(fig)
    buf = io.BytesIO()
    if (
        isinstance(fig.canvas, FigureCanvasAgg)
        and plt.rcParams["savefig.bbox"] == "tight"
        and not any(ax.get_axes_locator() for ax in fig.axes)
    ):
        edge = EDGE_PIXELS / fig.dpi
        w, h = fig.get_size_inches()
        restore = _tight_bbox.adjust_bbox(fig, Bbox.from_extents(-edge, -edge, w + edge, h + edge), None)
        try:
            fig.canvas.draw()
            drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches from the canvas's bottom left
            image = np.asarray(fig.canvas.buffer_rgba())
        finally:
            restore()
        if drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= w + 2 * edge and drawn.y1 <= h + 2 * edge:
            _cropped(image, drawn.padded(plt.rcParams["savefig.pad_inches"]), fig).save(
                buf, format="png", dpi=(fig.dpi, fig.dpi)
            )
            return buf.getvalue()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _cropped(image: np.ndarray, box, fig) -> Image.Image:
    """The pixels of ``box`` (inches from the figure's bottom left) of the drawn figure ``image`` (RGBA, top row
    first), where the box passes the figure's edge its background colour."""
    height, width = image.shape[:2]
    x0, x1 = math.floor(box.x0 * fig.dpi), math.ceil(box.x1 * fig.dpi)
    top, bottom = height - math.ceil(box.y1 * fig.dpi), height - math.floor(box.y0 * fig.dpi)
    background = np.round(np.array(matplotlib.colors.to_rgba(fig.get_facecolor())) * 255).astype(np.uint8)
    out = np.empty((bottom - top, x1 - x0, 4), dtype=np.uint8)
    out[:] = background
    r0, c0 = max(top, 0), max(x0, 0)
    r1, c1 = min(bottom, height), min(x1, width)
    out[r0 - top : r1 - top, c0 - x0 : c1 - x0] = image[r0:r1, c0:c1]
    return Image.fromarray(out)


#: Width (inches) of a chart's phone drawing: at the 110 dpi of the style, about a phone's 390 css px at 1.3x.
NARROW_WIDTH = 4.8


def to_png_narrow(fig, width: float = NARROW_WIDTH) -> bytes:
    """The same chart drawn again for a phone: narrower and taller, headline wrapped, so that
    its words stay the size they are on a screen instead of being shrunk with the picture."""
    import textwrap

    own = getattr(fig, "narrow_drawing", None)  # a chart whose layout must change for a phone draws itself again
    if callable(own):
        small = own()
        try:
            return to_png(small)
        finally:
            plt.close(small)
    w, h = fig.get_size_inches()
    if w <= width:
        return to_png(fig)
    title = getattr(fig, "_suptitle", None)
    old_title = title.get_text() if title is not None else None
    if title is not None:
        title.set_text("\n".join(textwrap.wrap(" ".join(old_title.split()), 44)))
    lines = old_title.count("\n") + 1 if old_title else 1
    extra = 0.22 * max(0, (title.get_text().count("\n") + 1 - lines)) if title is not None else 0
    fig.set_size_inches(width, h * (1 + 0.35 * (w / width - 1)) + extra)
    try:
        return to_png(fig)
    finally:
        fig.set_size_inches(w, h)
        if title is not None:
            title.set_text(old_title)


def show(fig, alt: str) -> None:
    """Display a figure in a notebook with its alt text, then close it (no duplicate inline copy). The
    output carries a phone drawing as well (metadata "narrow"), which the website shows on small screens."""
    from IPython.display import display

    png = base64.b64encode(to_png(fig)).decode("ascii")
    narrow = base64.b64encode(to_png_narrow(fig)).decode("ascii")
    plt.close(fig)
    display({"image/png": png, "text/plain": alt}, metadata={"image/png": {"alt": alt, "narrow": narrow}}, raw=True)
