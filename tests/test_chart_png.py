"""report.charts.to_png draws a chart once and crops it to savefig's tight box: the same picture as savefig's (to a
pixel's shift) and savefig's own route for a chart drawn past its figure's edge."""

import io

import numpy as np
import pytest
from PIL import Image

from insightlib.report import charts


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(float)


def _blocks(x: np.ndarray, k: int = 8) -> np.ndarray:
    """Mean grey of each k x k block: a shift by a fraction of a pixel moves these little, a missing mark a lot."""
    h, w = (x.shape[0] // k) * k, (x.shape[1] // k) * k
    return x[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _savefig(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_to_png_shows_what_savefig_shows():
    fig, ax = charts.new_figure("Children referred again within a year, by primary need")
    ax.plot(np.arange(50), np.sin(np.arange(50) / 5), label="N1 Abuse or neglect")
    ax.set_xlabel("days since closure")
    ax.legend()
    ours, theirs = _pixels(charts.to_png(fig)), _pixels(_savefig(fig))
    assert abs(ours.shape[0] - theirs.shape[0]) <= 1 and abs(ours.shape[1] - theirs.shape[1]) <= 1
    h, w = min(ours.shape[0], theirs.shape[0]), min(ours.shape[1], theirs.shape[1])
    # the same picture: block greys within 40 of 255 (a sub-pixel shift of text: about 30; the title gone: 180)
    assert np.abs(_blocks(ours[:h, :w]) - _blocks(theirs[:h, :w])).max() < 40
    hidden = theirs.copy()
    hidden[5:30, 10:400] = 255
    assert np.abs(_blocks(ours[:h, :w]) - _blocks(hidden[:h, :w])).max() > 100  # the comparison can fail
    assert Image.open(io.BytesIO(charts.to_png(fig))).info["dpi"] == pytest.approx((110, 110), abs=0.01)


def test_a_chart_past_its_edge_is_saved_by_savefig():
    fig, ax = charts.new_figure("A legend outside the axes")
    ax.plot([0, 1], [0, 1], label="a long label for a legend placed to the right of the figure")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    assert charts.to_png(fig) == _savefig(fig)
