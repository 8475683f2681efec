import matplotlib.image as mpimg
import matplotlib.pyplot as plt

import core.plots
from compression.report import plot
from core.plots import plot_curves


def _axes_of_next_plot(monkeypatch) -> list:
    made, real = [], plt.subplots

    def subplots(*a, **kw):
        fig, axes = real(*a, **kw)
        made.extend(axes[0])
        return fig, axes

    monkeypatch.setattr(core.plots.plt, "subplots", subplots)
    return made


def test_plot_curves_sets_each_panels_y_scale(tmp_path, monkeypatch):
    axes = _axes_of_next_plot(monkeypatch)
    plot_curves(tmp_path / "p.png", [
        {"x": [1, 2], "series": {"a": [1.0, 1000.0]}, "xlabel": "x", "ylabel": "y", "yscale": "log"},
        {"x": [1, 2], "series": {"a": [1.0, 2.0]}, "xlabel": "x", "ylabel": "y"},
    ])
    assert [ax.get_yscale() for ax in axes] == ["log", "linear"]
    assert mpimg.imread(tmp_path / "p.png").ndim == 3


def test_compression_plot_puts_perplexity_on_a_log_axis(tmp_path, monkeypatch):
    axes = _axes_of_next_plot(monkeypatch)
    rows = [{"method": "dense", "ratio": 1.0, "target_ppl": 186.0, "off_target_ppl": 50.4},
            {"method": "basel", "ratio": 0.5, "target_ppl": 889.3, "off_target_ppl": 2670.4},
            {"method": "basel", "ratio": 0.3, "target_ppl": 1665.4, "off_target_ppl": 3988.8}]
    assert plot(tmp_path / "c.png", rows, "t").is_file()
    assert [ax.get_yscale() for ax in axes] == ["log", "log"]
