"""prepare_image: files of any size and mode become inputs prepared like the training data."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from scratchcnn.datasets import load_dataset
from scratchcnn.errors import ScratchCNNError
from scratchcnn.images import center_digit, prepare_image

MNIST_PREP = {"channels": 1, "height": 28, "width": 28, "max_value": 255, "normalize": "scale", "mean": None,
              "std": None, "white_on_black": True}
CIFAR_PREP = {"channels": 3, "height": 32, "width": 32, "max_value": 255, "normalize": "scale", "mean": None,
              "std": None, "white_on_black": False}


def drawing(size=(120, 90), mode="RGB", box=(30, 20, 60, 70)):
    """Black ink (a filled rectangle) on a white page."""
    im = Image.new("RGB", size, "white")
    ImageDraw.Draw(im).rectangle(box, fill="black")
    return im.convert(mode) if mode != "RGB" else im


FILES = [("png", m) for m in ("L", "RGB", "RGBA", "P", "LA", "1", "I;16")] + [
    ("jpeg", m) for m in ("L", "RGB", "CMYK")]


@pytest.mark.parametrize("fmt,mode", FILES)
@pytest.mark.parametrize("prep,size", [(MNIST_PREP, (57, 43)), (CIFAR_PREP, (20, 24)),
                                       (dict(MNIST_PREP, height=8, width=8, max_value=16), (300, 410))])
def test_any_file_mode_and_size(tmp_path, fmt, mode, prep, size):
    box = (size[0] // 4, size[1] // 5, size[0] // 2, size[1] * 3 // 4)
    im = drawing(size=size, mode=mode if mode != "I;16" else "L", box=box)
    if mode == "I;16":  # 16-bit gray
        im = Image.fromarray(np.asarray(im, dtype=np.uint16) * 257)
    path = tmp_path / f"img.{fmt}"
    im.save(path)
    x = prepare_image(path, prep)
    assert x.shape == (prep["channels"], prep["height"], prep["width"]) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    if prep["white_on_black"]:  # a white page is inverted: mostly dark, ink bright
        assert x.mean() < 0.5 and x.max() > 0.5
    else:
        assert x.mean() > 0.5 and x.min() < 0.5


def test_values_follow_the_training_scaling():
    gray = Image.new("L", (40, 40), 64)
    np.testing.assert_allclose(prepare_image(gray, MNIST_PREP), 64 / 255, atol=1e-6)
    raw = dict(MNIST_PREP, normalize=None, max_value=16)
    np.testing.assert_allclose(prepare_image(gray, raw), 64 / 255 * 16, rtol=1e-5)
    std = dict(CIFAR_PREP, normalize="standardize", mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0])
    x = prepare_image(Image.new("RGB", (10, 10), (255, 0, 51)), std)
    np.testing.assert_allclose(x[:, 0, 0], [(1 - 0.1) / 0.5, (0 - 0.2) / 0.25, (0.2 - 0.3) / 2.0], rtol=1e-5)


def test_inversion_rules():
    page = drawing()
    assert prepare_image(page, MNIST_PREP)[0, 0, 0] == 0.0           # auto: bright page inverted
    assert prepare_image(page, MNIST_PREP, invert=False)[0, 0, 0] == 1.0
    dark = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(dark).line([(14, 3), (14, 24)], fill=255, width=3)
    np.testing.assert_allclose(prepare_image(dark, MNIST_PREP)[0], np.asarray(dark) / 255.0, atol=1e-6)
    assert prepare_image(page, CIFAR_PREP)[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # photos never inverted


def test_transparency_is_composited_on_white():
    im = Image.new("RGBA", (28, 28), (0, 0, 0, 0))          # transparent "black" background
    ImageDraw.Draw(im).rectangle((10, 5, 16, 22), fill=(0, 0, 0, 255))
    x = prepare_image(im, MNIST_PREP)
    assert x[0, 0, 0] == 0.0 and x[0, 12, 12] == 1.0


def test_center_mnist_style():
    im = drawing(size=(300, 200), box=(200, 10, 260, 60))     # small stroke in a corner
    plain = prepare_image(im, MNIST_PREP)[0]
    x = prepare_image(im, MNIST_PREP, center=True)[0]
    rows, cols = np.flatnonzero(x.max(1) > 0.1), np.flatnonzero(x.max(0) > 0.1)
    assert rows[-1] - rows[0] + 1 <= 21 and cols[-1] - cols[0] + 1 <= 21 and max(
        rows[-1] - rows[0], cols[-1] - cols[0]) >= 18  # fits, and fills, the 20x20 box
    ys, xs = np.indices(x.shape)
    cy, cx = (ys * x).sum() / x.sum(), (xs * x).sum() / x.sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0
    pys, pxs = (ys * plain).sum() / plain.sum(), (xs * plain).sum() / plain.sum()
    assert abs(pxs - 13.5) > 5 or abs(pys - 13.5) > 5  # without centring it stays in the corner
    blank = center_digit(np.zeros((1, 50, 50), np.float32))
    assert blank.shape == (1, 28, 28) and not blank.any()


def test_arrays_of_several_layouts(rng):
    img = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    a = prepare_image(img, CIFAR_PREP)
    b = prepare_image(img.transpose(2, 0, 1), CIFAR_PREP)                   # (C, H, W)
    c = prepare_image(img.astype(np.float32) / 255.0, CIFAR_PREP)           # float in 0..1
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c, atol=1e-6)
    assert prepare_image(img[..., 0], CIFAR_PREP).shape == (3, 32, 32)      # gray -> RGB
    with pytest.raises(ScratchCNNError, match="shape"):
        prepare_image(np.zeros((2, 3, 4, 5)), CIFAR_PREP)


def test_round_trip_matches_the_data_set(tmp_path):
    """A training image saved as PNG comes back as the very model input it was."""
    data = load_dataset("digits")
    for i in range(5):
        x = data.x_test[i, 0]
        path = tmp_path / f"d{i}.png"
        Image.fromarray(np.round(x * 255).astype(np.uint8)).resize((64, 64), Image.Resampling.NEAREST).save(path)
        np.testing.assert_allclose(prepare_image(path, data.preprocessing)[0], x, atol=1 / 255 + 1e-6)


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(ScratchCNNError, match="not_an_image.png"):
        prepare_image(bad, MNIST_PREP)
    with pytest.raises(ScratchCNNError, match="missing.png"):
        prepare_image(tmp_path / "missing.png", MNIST_PREP)
    good = tmp_path / "cut.png"
    drawing().save(good)
    good.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ScratchCNNError, match="cut.png"):
        prepare_image(good, MNIST_PREP)
