import torch

from lit_mnist.data.augment import random_distortion


def test_no_augmentation_leaves_images_unchanged():
    images = torch.rand(4, 1, 28, 28)
    assert torch.allclose(random_distortion(images, 0.0, 0.0, 0.0), images, atol=1e-4)


def test_each_image_gets_its_own_transform_and_keeps_a_black_background():
    torch.manual_seed(0)
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1.0
    moved = random_distortion(images, max_rotation=15, max_shift=0.1, max_scale=0.1)
    assert moved.shape == images.shape
    assert not torch.allclose(moved[0], moved[1])
    assert moved.min() >= 0 and moved.max() <= 1
    assert torch.all(moved[:, :, 0, :] == 0)  # nothing is pulled in from outside the image


def test_the_grid_is_torchs_affine_grid():
    from torch.nn import functional as F

    from lit_mnist.data.augment import _affine_grid

    torch.manual_seed(0)
    theta = torch.randn(5, 2, 3)
    expected = F.affine_grid(theta, [5, 1, 28, 20], align_corners=False)
    assert torch.allclose(_affine_grid(theta, 28, 20).permute(0, 2, 3, 1), expected, atol=1e-6)


def test_the_elastic_warp_moves_pixels_by_about_its_strength():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 4:24:4, :] = 1.0  # horizontal lines: a vertical displacement shows as changed pixels
    gentle = random_distortion(images, 0, 0, 0, elastic_alpha=2.0)
    strong = random_distortion(images, 0, 0, 0, elastic_alpha=30.0)
    assert 0 < (gentle - images).abs().mean() < (strong - images).abs().mean()
    assert strong.min() >= 0 and strong.max() <= 1


def test_the_elastic_field_has_the_statistics_of_uniform_noise_blurred_by_a_gaussian():
    from torch.nn import functional as F

    from lit_mnist.data.augment import _elastic_field

    torch.manual_seed(0)
    sigma, n = 4.0, 10_000
    offsets = torch.arange(-27, 28, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    noise = torch.empty(n, 1, 28, 28).uniform_(-1, 1)
    blurred = F.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, 27))  # zero padding, as the warp's border
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(27, 0))
    # A strength of half the width is one normalised unit.
    field = _elastic_field(n, 28, 28, 14.0, sigma, torch.device("cpu"), torch.float32)
    assert field.shape == (n, 2, 28, 28)

    # Covariances between a centre pixel, its neighbours at 1 and 4 pixels, an edge and a corner.
    pixels = torch.tensor([14 * 28 + 14, 14 * 28 + 15, 18 * 28 + 14, 14 * 28 + 27, 0])

    def covariance(images: torch.Tensor) -> torch.Tensor:
        values = images.flatten(1)[:, pixels]
        return values.T @ values / len(values)

    expected = covariance(blurred[:, 0])
    for axis in (0, 1):
        assert torch.allclose(covariance(field[:, axis]), expected, atol=0.1 * expected[0, 0].item())


def test_only_training_batches_are_augmented():
    from types import SimpleNamespace

    from lit_mnist.data import MNISTDataModule

    datamodule = MNISTDataModule(max_rotation=30.0, max_shift=0.2, max_scale=0.2, elastic_alpha=20.0)
    images = torch.zeros(8, 28, 28, dtype=torch.uint8)
    images[:, 8:20, 12:16] = 255
    labels = torch.arange(8)
    as_floats = images.unsqueeze(1).float() / 255
    for stage in ("validating", "testing", "predicting", "sanity_checking"):
        datamodule.trainer = SimpleNamespace(training=False, **{stage: True})
        out, out_labels = datamodule.on_after_batch_transfer((images, labels), 0)
        assert torch.equal(out, as_floats) and torch.equal(out_labels, labels), stage
    datamodule.trainer = SimpleNamespace(training=True)
    out, _ = datamodule.on_after_batch_transfer((images, labels), 0)
    assert out.shape == as_floats.shape and not torch.allclose(out, as_floats)
