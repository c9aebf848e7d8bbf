"""Save / load round trip, safety of the file format, interrupted saves."""
import os

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.app import presets


def _trained_model():
    r = np.random.default_rng(0)
    x, y = r.random((64, 1, 8, 8)).astype(np.float32), r.integers(0, 10, 64)
    model = presets.strong_cnn((1, 8, 8), 10)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    model.fit(x, y, epochs=2, batch_size=16, optimizer=opt, verbose=0)
    model.metadata = {"dataset": "digits", "class_names": [str(i) for i in range(10)]}
    return model, x, y


def test_round_trip_predicts_exactly_the_same(tmp_path):
    model, x, y = _trained_model()
    path = tmp_path / "model.npz"
    sc.save(model, path)
    loaded = sc.load(path)
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))
    assert loaded.metadata == model.metadata
    assert loaded.history.history["loss"] == model.history.history["loss"]
    assert repr(loaded) == repr(model)
    # optimizer state survives: one more identical step on both gives identical weights
    for m in (model, loaded):
        sc.manual_seed(5)
        m.fit(x, y, epochs=3, initial_epoch=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))
    assert loaded.optimizer.steps == model.optimizer.steps == 12
    assert len(loaded.history.epoch) == 3


def test_float64_model_round_trip(tmp_path):
    model = presets.seed_b((1, 8, 8), 10).to(np.float64)
    sc.save(model, tmp_path / "m64.npz")
    loaded = sc.load(tmp_path / "m64.npz")
    assert loaded.dtype == np.float64
    x = np.random.rand(3, 1, 8, 8)
    np.testing.assert_array_equal(loaded.predict_logits(x), model.predict_logits(x))


def test_file_has_no_pickle(tmp_path):
    model, _, _ = _trained_model()
    sc.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        for k in npz.files:
            assert npz[k].dtype != object


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    model, x, _ = _trained_model()
    path = tmp_path / "model.npz"
    sc.save(model, path)
    before = path.read_bytes()

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        sc.save(presets.seed_b((1, 8, 8), 10), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]          # no temporary file left behind
    np.testing.assert_array_equal(sc.load(path).predict_logits(x), model.predict_logits(x))


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(sc.ModelFileError, match="does not exist"):
        sc.load(tmp_path / "nope.npz")
    model, _, _ = _trained_model()
    sc.save(model, tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(sc.ModelFileError, match="trunc.npz"):
        sc.load(tmp_path / "trunc.npz")
    corrupt = bytearray(data)
    corrupt[len(data) // 3] ^= 0xFF
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(sc.ModelFileError, match="corrupt.npz"):
        sc.load(tmp_path / "corrupt.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(sc.ModelFileError, match="text.npz"):
        sc.load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(sc.ModelFileError, match="not a scratchcnn model"):
        sc.load(tmp_path / "other.npz")


def test_a_model_file_written_before_the_layout_change_still_loads():
    """tests/data/model-before-layout.npz was written by scratchcnn at commit 68f99c0 (before the
    layers became textbook pages and Sequential a pure container): it loads as the model class,
    predicts what it predicted then (on both paths), and resumes with its optimizer and history."""
    import pathlib
    data = pathlib.Path(__file__).parent / "data"
    model = sc.load(data / "model-before-layout.npz")
    expected = np.load(data / "model-before-layout-expected.npz")
    assert type(model) is sc.Sequential and hasattr(model, "fit")
    np.testing.assert_allclose(model.predict_proba(expected["x"]), expected["proba"], rtol=1e-5, atol=1e-6)
    with sc.textbook():
        np.testing.assert_allclose(model.predict_proba(expected["x"]), expected["proba"], rtol=1e-5, atol=1e-6)
    assert model.optimizer.steps == int(expected["optimizer_steps"])
    assert model.metadata["class_names"] == ["a", "b", "c"] and len(model.history.epoch) == 2
    assert type(model.layers[0]).__module__ == "scratchcnn.nn.conv"
