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
    (axes,) = figure.axes
    captions, pictures = axes.texts, axes.images
    assert [caption.get_text() for caption in captions] == ["3 (8)"] * 24 and len(pictures) == 24
    for caption, picture in zip(captions, pictures):
        text, digit = caption.get_window_extent(renderer), picture.get_window_extent(renderer)
        assert text.height * scale >= 9  # pixels on the screen
        assert digit.width * scale >= 40 and digit.height == digit.width  # square digits, large enough to read
        assert digit.y1 < text.y0 < digit.y1 + 0.5 * digit.height  # each caption sits just above its digit
        assert digit.x0 < (text.x0 + text.x1) / 2 < digit.x1
    boxes = [picture.get_window_extent(renderer) for picture in pictures]
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all(figure.bbox.contains(box.x0, box.y0) and figure.bbox.contains(box.x1, box.y1) for box in boxes)
    assert "84 of 10000 wrong" in figure.get_suptitle()
