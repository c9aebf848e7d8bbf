"""Batch augmentation: shapes, exact shifts and crops, flips, seeding, configs, names."""
import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.datasets import (Compose, RandomCrop, RandomHorizontalFlip, RandomShift, augment_from_config,
                                 augment_from_name)
from scratchcnn.datasets.augment import crop_at
from scratchcnn.errors import ConfigError, ShapeError


@pytest.fixture
def batch(rng):
    # strictly positive values, so zero fill is distinguishable from content
    return rng.uniform(0.1, 1.0, size=(16, 3, 9, 7)).astype(np.float32)


def shifted(img, dy, dx):
    """Reference: img (C, H, W) moved down dy and right dx, zeros filling the gap."""
    out = np.zeros_like(img)
    H, W = img.shape[1:]
    out[:, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        img[:, max(-dy, 0):H - max(dy, 0), max(-dx, 0):W - max(dx, 0)]
    return out


def test_shift_moves_content_exactly(batch):
    out = RandomShift(2)(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    seen = set()
    for x, y in zip(batch, out):
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if np.array_equal(shifted(x, dy, dx), y)]
        assert len(hits) == 1, "each output must be its input shifted by one (dy, dx) within range"
        seen.add(hits[0])
    # the offsets are drawn per sample, in both directions, not once per batch
    assert len({dy for dy, _ in seen}) > 1 and len({dx for _, dx in seen}) > 1


def test_crop_smaller_than_input(batch):
    out = RandomCrop(size=(5, 4), padding=1)(batch)
    assert out.shape == (16, 3, 5, 4)
    padded = np.pad(batch, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for p, y in zip(padded, out):
        windows = [p[:, i:i + 5, j:j + 4] for i in range(7) for j in range(6)]
        assert any(np.array_equal(w, y) for w in windows)
    with pytest.raises(ShapeError, match="larger"):
        RandomCrop(size=20)(batch)


def test_crop_at_matches_loop(batch, rng):
    top, left = rng.integers(0, 4, size=16), rng.integers(0, 3, size=16)
    out = crop_at(batch, top, left, (6, 5))
    expected = np.stack([x[:, t:t + 6, l:l + 5] for x, t, l in zip(batch, top, left)])
    np.testing.assert_array_equal(out, expected)
    out[0] = -1  # a copy, never a view of the caller's batch
    assert batch.min() > 0


def test_flip(batch):
    always = RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(always(batch), batch[..., ::-1])
    np.testing.assert_array_equal(always(always(batch)), batch)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(batch), batch)
    out = RandomHorizontalFlip(0.5)(batch)
    flipped = [np.array_equal(y, x[..., ::-1]) for x, y in zip(batch, out)]
    kept = [np.array_equal(y, x) for x, y in zip(batch, out)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    with pytest.raises(ConfigError):
        RandomHorizontalFlip(1.5)


def test_seeded_determinism(batch):
    aug = Compose([RandomCrop(padding=3), RandomHorizontalFlip()])
    sc.manual_seed(0)
    a = aug(batch)
    sc.manual_seed(0)
    b = aug(batch)
    sc.manual_seed(1)
    c = aug(batch)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_names_and_configs(batch):
    assert augment_from_name("none") is None and augment_from_name(None) is None
    assert isinstance(augment_from_name("shift2"), RandomShift) and augment_from_name("shift3").max_shift == 3
    aug = augment_from_name("crop4-flip")
    assert isinstance(aug, Compose) and aug.config() == {
        "name": "Compose", "transforms": [{"name": "RandomCrop", "size": None, "padding": [4, 4]},
                                          {"name": "RandomHorizontalFlip", "p": 0.5}]}
    rebuilt = augment_from_config(aug.config())
    sc.manual_seed(3)
    a = aug(batch)
    sc.manual_seed(3)
    np.testing.assert_array_equal(rebuilt(batch), a)
    assert augment_from_config(RandomShift(1).config()).max_shift == 1
    for bad in ("rotate", "flip2", "shift-x"):
        with pytest.raises(ConfigError, match="augmentation"):
            augment_from_name(bad)
    with pytest.raises(ShapeError):
        RandomShift(1)(batch[0])


def test_fit_with_augmentation(rng):
    x = rng.uniform(0, 1, size=(32, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=32)
    model = sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.ReLU(), sc.Flatten(), sc.Dense(2 * 8 * 8, 3),
                          input_shape=(1, 8, 8))
    hist = model.fit(x, y, epochs=2, batch_size=8, augment=augment_from_name("shift1-flip"), verbose=0)
    assert len(hist.history["loss"]) == 2 and np.isfinite(hist.history["loss"]).all()


def test_random_erasing():
    """Each erased sample has one rectangle of zeros covering 2-33% of it (clipped to the image),
    the rest untouched; p=0 changes nothing; the name and the config rebuild it; bad arguments are
    ConfigErrors naming the argument."""
    from scratchcnn.datasets.augment import RandomErasing
    sc.manual_seed(3)
    x = np.ones((200, 2, 16, 12), np.float32)
    out = RandomErasing(p=1.0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    zero = out == 0
    np.testing.assert_array_equal(zero[:, 0], zero[:, 1])                 # the same rectangle on every channel
    frac = zero[:, 0].mean(axis=(1, 2))
    assert (frac > 0).all() and frac.max() <= 0.45                         # rounding and clipping on 16x12
    rows, cols = zero[:, 0].any(axis=2), zero[:, 0].any(axis=1)            # a rectangle: rows x cols exactly
    np.testing.assert_array_equal(zero[:, 0], rows[:, :, None] & cols[:, None, :])
    np.testing.assert_array_equal(RandomErasing(p=0.0)(x), x)
    half = RandomErasing(p=0.5)(x)
    assert 60 < (half == 0).any(axis=(1, 2, 3)).sum() < 140
    aug = augment_from_name("shift2-erase25")
    assert aug.transforms[1].p == 0.25 and augment_from_config(aug.config()).config() == aug.config()
    for kwargs, what in [({"p": 1.5}, "p"), ({"scale": (0.5, 0.1)}, "scale"), ({"ratio": "wide"}, "ratio"),
                         ({"value": float("nan")}, "value")]:
        with pytest.raises(sc.ConfigError, match=what):
            RandomErasing(**kwargs)
    with pytest.raises(sc.ConfigError, match="erase"):
        augment_from_name("erase150")
