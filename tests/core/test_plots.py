"""Every PNG draws Hangul with NanumGothic, and a curve of one point stays visible."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from elmokit.core.plots import KOREAN_FONT, figure_style, font_families, korean_font_path, plot_task_curves

BLUE = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib's first colour (C0)


def _missing_glyph_warnings(families: list[str], text: str) -> list[str]:
    with figure_style() as plt, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title(text, family=families)
        fig.canvas.draw()
        plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_korean_font_is_the_packaged_nanum():
    path = korean_font_path()
    assert path is not None and path.name == "NanumGothic.ttf" and "koreanize_matplotlib" in str(path)
    assert font_families() == ["DejaVu Sans", KOREAN_FONT]
    assert font_families(monospace=True)[0] == "DejaVu Sans Mono"


def test_a_korean_label_is_drawn_with_nanum():
    from matplotlib import font_manager

    text = "삼성, 사상 첫 통합우승 4연패"
    assert _missing_glyph_warnings(font_families(), text) == []
    # the control: without NanumGothic the same label is drawn as boxes (so the check above can fail)
    assert _missing_glyph_warnings(["DejaVu Sans"], text)
    found = font_manager.findfont(font_manager.FontProperties(family=KOREAN_FONT), fallback_to_default=False)
    assert found == str(korean_font_path())


def test_the_text_plot_draws_hangul_without_boxes(tmp_path):
    from elmokit.core.plots import plot_text_activation

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_text_activation(list("고양이가 책을 본다"), np.linspace(-1, 1, 9), tmp_path / "t.png", title="한국어")
    assert (tmp_path / "t.png").stat().st_size > 0
    assert not [w for w in caught if "missing from font" in str(w.message)]


@pytest.mark.parametrize("points", [1, 5])
def test_a_curve_of_one_point_is_visible(tmp_path, points):
    from matplotlib.image import imread

    records = [{"split": "train", "step": s, "loss": 2.0 - 0.1 * s} for s in range(1, points + 1)]
    records.append({"split": "dev", "step": points, "accuracy": 50.0, "lr": 0.01})
    png = plot_task_curves(records, tmp_path / "c.png", metric="accuracy")
    img = imread(png)[..., :3]
    left = img[:, : img.shape[1] // 2]  # the training-loss panel
    blue = np.abs(left - BLUE).max(axis=-1) < 0.08
    assert blue.sum() > 20, f"the training-loss panel shows {blue.sum()} pixels of the curve"
