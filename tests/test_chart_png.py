"""report.charts.to_png draws a chart once and crops it to savefig's tight box: the same picture as savefig's (to a
pixel's shift), for a chart drawn past its figure's edge too; savefig's own route for one drawn further out than the
canvas's room (charts.EDGE_PIXELS). charts.note wraps its words to the figure's width."""

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


def _same_picture(fig) -> None:
    ours, theirs = _pixels(charts.to_png(fig)), _pixels(_savefig(fig))
    assert abs(ours.shape[0] - theirs.shape[0]) <= 2 and abs(ours.shape[1] - theirs.shape[1]) <= 2
    h, w = min(ours.shape[0], theirs.shape[0]) - 2, min(ours.shape[1], theirs.shape[1]) - 2

    def gap(other):  # the largest block difference, ours moved by up to a pixel each way to line up best
        return min(
            np.abs(_blocks(ours[i : i + h, j : j + w]) - _blocks(other[1 : 1 + h, 1 : 1 + w])).max()
            for i in range(3)
            for j in range(3)
        )

    # the same picture: block greys within 40 of 255 (a sub-pixel shift of text: about 30; the title gone: 180)
    assert gap(theirs) < 40
    hidden = theirs.copy()
    hidden[5:30, 10:400] = 255
    assert gap(hidden) > 100  # the comparison can fail


def test_to_png_shows_what_savefig_shows():
    fig, ax = charts.new_figure("Children referred again within a year, by primary need")
    ax.plot(np.arange(50), np.sin(np.arange(50) / 5), label="N1 Abuse or neglect")
    ax.set_xlabel("days since closure")
    ax.legend()
    _same_picture(fig)
    assert Image.open(io.BytesIO(charts.to_png(fig))).info["dpi"] == pytest.approx((110, 110), abs=0.01)


def test_a_chart_past_its_edge_is_drawn_once_as_savefig_draws_it(monkeypatch):
    fig, ax = charts.new_figure("A legend outside the axes")
    ax.plot([0, 1], [0, 1], label="a long label for a legend placed to the right of the figure")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    draws = []
    real = type(fig.canvas).draw
    monkeypatch.setattr(type(fig.canvas), "draw", lambda canvas: draws.append(1) or real(canvas))
    png = charts.to_png(fig)
    assert len(draws) == 1
    assert _pixels(png).shape[1] > fig.get_figwidth() * fig.dpi  # the legend beyond the edge is in the picture
    monkeypatch.undo()
    _same_picture(fig)


def test_a_chart_further_out_than_the_room_is_saved_by_savefig():
    fig, ax = charts.new_figure("Words far beyond the figure")
    ax.plot([0, 1], [0, 1])
    ax.text(8.0, 0.5, "far out", transform=ax.transAxes)  # about 45 inches right of the axes
    assert charts.to_png(fig) == _savefig(fig)


def test_a_note_is_wrapped_to_the_figure_width():
    fig, _ = charts.new_figure("A chart with a note")
    words = charts.note(fig, " ".join(["Other groups are listed here."] * 20))
    wide = charts.to_png(fig)
    lines_wide = words.get_text().count("\n") + 1
    charts.to_png_narrow(fig)
    assert words.get_text().count("\n") + 1 > lines_wide > 1
    assert words.get_text().replace("\n", " ") == " ".join(["Other groups are listed here."] * 20)
    assert _pixels(wide).shape[1] <= fig.get_figwidth() * fig.dpi + 2 * fig.dpi * 0.1 + 2  # within the figure
