"""Shared test set-up."""

import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Tests draw report figures without showing them (notebooks close theirs in ``charts.show``);
    close them after each test so the suite does not pile up hundreds of open figures."""
    yield
    plt.close("all")
