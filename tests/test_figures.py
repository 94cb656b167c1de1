"""The test pass's figures can be read at the size TensorBoard shows them."""

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from lit_mnist.tensorboard.figures import CARD_WIDTH, confusion_matrix_figure, misclassified_figure


def drawn(figure):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def test_every_count_of_the_confusion_matrix_fits_its_cell():
    matrix = torch.full((10, 10), 7)
    matrix.fill_diagonal_(1135)  # four digits, as MNIST's largest class has
    figure = confusion_matrix_figure(matrix)
    renderer = drawn(figure)
    (axes,) = figure.axes
    cell_width = axes.get_window_extent(renderer).width / 10
    counts = [text for text in axes.texts]
    assert sorted(text.get_text() for text in counts) == sorted(["1135"] * 10 + ["7"] * 90)
    for text in counts:
        extent = text.get_window_extent(renderer)
        assert extent.width < 0.9 * cell_width, text.get_text()
        x, y = axes.transData.transform(text.get_position())
        assert extent.x0 > x - cell_width / 2 and extent.x1 < x + cell_width / 2


def test_the_misclassified_digits_captions_are_legible_at_tensorboards_card_width():
    digits = [(torch.zeros(28, 28, dtype=torch.uint8), 3, 8) for _ in range(24)]
    figure = misclassified_figure(digits, errors=84, total=10000)
    renderer = drawn(figure)
    scale = CARD_WIDTH / figure.bbox.width
    captions = [axis.title for axis in figure.axes if axis.title.get_text()]
    assert [caption.get_text() for caption in captions] == ["3 (8)"] * 24
    for caption in captions:
        assert caption.get_window_extent(renderer).height * scale >= 9  # pixels on the screen
    assert "84 of 10000 wrong" in figure.get_suptitle()
