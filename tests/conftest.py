"""Shared test set-up."""

import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Tests draw report figures without showing them (notebooks close theirs in ``charts.show``);
    close them after each test so the suite does not pile up hundreds of open figures."""
    yield
    plt.close("all")


@pytest.fixture(autouse=True)
def _forget_figures_across_councils():
    """The published figures across councils are worked out once per process; a test that patches a
    council's name or a shipped table must not leave its version for the tests after it."""
    yield
    from insightlib.analyses import published_practice

    published_practice.forget_figures()
