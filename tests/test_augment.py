import torch

from lit_mnist.augment import random_distortion


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
