"""Joint image/mask transforms: shapes, label sets, flip and crop geometry, determinism."""
import numpy as np
import pytest
import torch
from PIL import Image

from slrnet.data.transforms import (MEAN, STD, TrainTransform, ValTransform, _adjust_hue, denormalize,
                                    sample_crop_box)


def _quadrants(h=60, w=80):
    """Image whose colour is a function of the mask class (4 quadrants, a void line) for alignment checks."""
    mask = np.zeros((h, w), np.uint8)
    mask[: h // 2, w // 2:] = 3
    mask[h // 2:, : w // 2] = 7
    mask[h // 2:, w // 2:] = 12
    mask[:, w // 2] = 255
    colours = {0: (20, 20, 20), 3: (230, 40, 40), 7: (40, 230, 40), 12: (40, 40, 230), 255: (128, 128, 128)}
    image = np.zeros((h, w, 3), np.uint8)
    for v, c in colours.items():
        image[mask == v] = c
    return Image.fromarray(image), mask, colours


def test_train_transform_shapes_and_dtypes():
    image, mask, _ = _quadrants()
    x, y = TrainTransform(48, scale=(0.5, 1.0), generator=torch.Generator().manual_seed(0))(image, mask)
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert y.shape == (48, 48) and y.dtype == torch.int64


def test_mask_values_stay_in_the_original_set():
    image, mask, _ = _quadrants()
    t = TrainTransform(37, scale=(0.2, 1.0), generator=torch.Generator().manual_seed(1))
    for _ in range(20):
        _, y = t(image, mask)
        assert set(torch.unique(y).tolist()) <= {0, 3, 7, 12, 255}


def test_flip_is_applied_to_image_and_mask_together():
    image, mask, _ = _quadrants()
    kw = dict(crop_size=40, scale=(0.6, 1.0), jitter=(0.3, 0.3, 0.3, 0.1))
    x0, y0 = TrainTransform(flip_prob=0.0, generator=torch.Generator().manual_seed(5), **kw)(image, mask)
    x1, y1 = TrainTransform(flip_prob=1.0, generator=torch.Generator().manual_seed(5), **kw)(image, mask)
    assert torch.equal(y1, torch.flip(y0, dims=[1]))
    assert torch.allclose(x1, torch.flip(x0, dims=[2]), atol=1e-6)


def test_image_and_mask_stay_aligned_after_crop_and_flip():
    image, mask, colours = _quadrants()
    t = TrainTransform(64, scale=(0.3, 1.0), jitter=(0, 0, 0, 0), generator=torch.Generator().manual_seed(2))
    for _ in range(10):
        x, y = t(image, mask)
        rgb = denormalize(x).astype(int)                                   # (64, 64, 3)
        expected = np.array([colours[v] for v in y.flatten().tolist()]).reshape(64, 64, 3)
        close = np.abs(rgb - expected).max(-1) < 30
        assert close.mean() > 0.9  # only bilinear-blended pixels along class borders may differ


def test_identity_when_crop_covers_image_and_nothing_random_is_on():
    image, mask, _ = _quadrants(32, 32)
    t = TrainTransform(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter=(0, 0, 0, 0))
    x, y = t(image, mask)
    xv, yv = ValTransform()(image, mask)
    assert torch.allclose(x, xv, atol=1e-6) and torch.equal(y, yv)


@pytest.mark.parametrize("hw", [(100, 120), (375, 500), (64, 64)])
@pytest.mark.parametrize("scale", [(0.9, 1.0), (0.3, 0.6), (0.08, 1.0)])
def test_crop_area_and_ratio_respect_their_ranges(hw, scale):
    h, w = hw
    g = torch.Generator().manual_seed(0)
    fractions = []
    for _ in range(200):
        top, left, ch, cw = sample_crop_box(h, w, scale, (3 / 4, 4 / 3), g)
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
        frac = ch * cw / (h * w)
        tol = 2.5 * (ch + cw) / (h * w)   # integer rounding of both sides
        assert scale[0] - tol <= frac <= scale[1] + tol
        assert 3 / 4 * (1 - 2 / min(ch, cw)) <= cw / ch <= 4 / 3 * (1 + 2 / min(ch, cw))
        fractions.append(frac)
    # the draws actually spread over the range, not stuck at one end
    assert max(fractions) - min(fractions) > 0.5 * (scale[1] - scale[0])


def test_crop_of_a_very_elongated_image_still_fits():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        top, left, ch, cw = sample_crop_box(20, 400, (0.9, 1.0), (3 / 4, 4 / 3), g)
        assert top + ch <= 20 and left + cw <= 400 and ch >= 1 and cw >= 1


def test_determinism_under_a_generator_and_the_global_rng():
    image, mask, _ = _quadrants()
    a = TrainTransform(40, scale=(0.5, 1.0), generator=torch.Generator().manual_seed(7))(image, mask)
    b = TrainTransform(40, scale=(0.5, 1.0), generator=torch.Generator().manual_seed(7))(image, mask)
    c = TrainTransform(40, scale=(0.5, 1.0), generator=torch.Generator().manual_seed(8))(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    t = TrainTransform(40, scale=(0.5, 1.0))
    torch.manual_seed(3)
    d = t(image, mask)
    torch.manual_seed(3)
    e = t(image, mask)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])


def test_val_transform_normalises_full_image():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (17, 23)).astype(np.uint8)
    x, y = ValTransform()(arr, mask)
    expected = (arr.astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    assert x.shape == (3, 17, 23)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert torch.equal(y, torch.from_numpy(mask.astype(np.int64)))
    assert np.array_equal(denormalize(x), arr)


def test_hue_shift_by_half_turn_maps_red_to_cyan():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    r, g, b = np.asarray(_adjust_hue(red, 0.5))[0, 0].tolist()
    assert r < 10 and g > 240 and b > 240


def test_colour_jitter_changes_colours_but_not_the_mask():
    image, mask, _ = _quadrants()
    kw = dict(crop_size=40, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), flip_prob=0.0)
    x0, y0 = TrainTransform(jitter=(0, 0, 0, 0), generator=torch.Generator().manual_seed(4), **kw)(image, mask)
    x1, y1 = TrainTransform(generator=torch.Generator().manual_seed(4), **kw)(image, mask)
    assert torch.equal(y0, y1)
    assert (x0 - x1).abs().max() > 0.05


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="scale"):
        TrainTransform(32, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="crop_size"):
        TrainTransform(0)
    image, mask, _ = _quadrants()
    with pytest.raises(ValueError, match="mask"):
        ValTransform()(image, mask[:-1])


def test_dataloader_workers_draw_different_augmentations():
    """With generator=None each worker uses its own (differently seeded) torch RNG."""
    image, mask, _ = _quadrants()

    class Repeated(torch.utils.data.Dataset):
        transform = TrainTransform(32, scale=(0.3, 1.0))

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return self.transform(image, mask)[0]

    torch.manual_seed(0)
    crops = list(torch.utils.data.DataLoader(Repeated(), batch_size=1, num_workers=2))
    assert not torch.equal(crops[0], crops[1])  # worker 0 and worker 1 each made their first draw
    # the pitfall the docstring warns about: a generator object is copied identically into each worker
    Repeated.transform = TrainTransform(32, scale=(0.3, 1.0), generator=torch.Generator().manual_seed(0))
    crops = list(torch.utils.data.DataLoader(Repeated(), batch_size=1, num_workers=2))
    assert torch.equal(crops[0], crops[1])


def test_normalisation_table_gives_the_float64_bits():
    """The (3, 256) lookup equals (x / 255 - mean) / std computed in float64 and rounded once, bit for bit."""
    from slrnet.data.transforms import normalize_to_tensor

    rgb = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]              # the extremes are in the image
    x = torch.from_numpy(rgb.astype(np.float64)).permute(2, 0, 1) / 255.0
    expected = ((x - torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1))
                / torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)).float()
    got = normalize_to_tensor(Image.fromarray(rgb))
    assert got.dtype == torch.float32 and got.shape == (3, 37, 53) and got.is_contiguous()
    assert torch.equal(got, expected)
    other = normalize_to_tensor(Image.fromarray(rgb), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert torch.equal(other, ((x - 0.5) / torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64).view(3, 1, 1)).float())
