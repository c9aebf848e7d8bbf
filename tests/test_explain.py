"""Saliency and Grad-CAM (``scratchcnn.app.explain``) and the web page's ``POST /api/explain``.

The saliency map is the layers' own backward pass down to the input: it equals central
differences of the class score on a tiny float64 model. Grad-CAM equals its formula,
``ReLU(sum_c mean(dA_c) A_c)``, on a hand-made network whose ``dA`` is known in closed form.
"""
import base64

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.app.explain import explain, grad_cam_from, overlay, upsample_bilinear


def tiny_float64_model():
    sc.manual_seed(0)
    m = sc.Sequential(sc.Conv2D(2, 3, 3, padding=1), sc.BatchNorm2D(3), sc.ReLU(), sc.MaxPool2D(2),
                      sc.Conv2D(3, 4, 3, padding=1), sc.Tanh(), sc.Flatten(), sc.Dropout(0.3),
                      sc.Dense(4 * 3 * 3, 5), input_shape=(2, 6, 6))
    m.to(np.float64)
    r = np.random.default_rng(1)
    for p in m.parameters():
        p.data += 0.1 * r.standard_normal(p.shape)
    m[1]._buffers["running_mean"] = 0.1 * r.standard_normal(3)
    m[1]._buffers["running_var"] = np.abs(r.standard_normal(3)) + 0.5
    return m


@pytest.mark.parametrize("cls", [None, 0, 3])
def test_saliency_equals_central_differences_of_the_class_score(cls):
    m = tiny_float64_model()
    x = np.random.default_rng(2).standard_normal((2, 6, 6))
    e = explain(m, x, cls=cls)
    m.eval()
    k = e["class"]

    def score(xx):
        with sc.no_grad():
            return m(xx[None])[0, k]

    eps, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (score(up) - score(down)) / (2 * eps)
    assert cls is not None or k == int(np.argmax(e["logits"]))
    np.testing.assert_allclose(e["input_grad"], numeric, atol=1e-8, rtol=1e-6)
    np.testing.assert_allclose(e["saliency"], np.abs(numeric).max(axis=0), atol=1e-8)
    with sc.no_grad():
        np.testing.assert_allclose(e["logits"], m(x[None])[0], atol=1e-12)


def test_grad_cam_equals_its_formula_on_a_hand_made_network():
    # a 1x1 conv with known weights, global average pooling, a Dense with known weights:
    # score_k = sum_c W[k, c] * mean(A_c) + b_k, so dA_c = W[k, c] / (h w) everywhere and
    # alpha_c = W[k, c] / (h w); Grad-CAM = ReLU(sum_c alpha_c A_c).
    conv = sc.Conv2D(1, 2, 1)
    conv.weight.data[...] = np.array([1.0, -2.0]).reshape(2, 1, 1, 1)
    conv.bias.data[...] = [0.5, 0.25]
    dense = sc.Dense(2, 3)
    dense.weight.data[...] = [[1.0, 0.0], [0.5, -1.0], [-1.0, 2.0]]
    dense.bias.data[...] = 0
    m = sc.Sequential(conv, sc.GlobalAvgPool2D(), dense, input_shape=(1, 4, 4)).to(np.float64)
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4) / 8 - 1
    a = np.stack([1.0 * x[0] + 0.5, -2.0 * x[0] + 0.25])            # the conv's output by hand
    for k in range(3):
        e = explain(m, x, cls=k)
        alpha = dense.weight.data[k] / 16
        np.testing.assert_allclose(e["alpha"], alpha, atol=1e-12)
        want = np.maximum(alpha[0] * a[0] + alpha[1] * a[1], 0)
        np.testing.assert_allclose(e["grad_cam_low"], want, atol=1e-12)
        np.testing.assert_allclose(e["grad_cam"], want, atol=1e-12)           # same size: upsampling is exact
        assert e["layer"] == 0
    cam, alpha = grad_cam_from(a, np.ones_like(a))
    np.testing.assert_allclose(cam, np.maximum(a.sum(axis=0), 0))


def test_bilinear_upsampling_is_pytorchs():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((3, 5))
    want = torch.nn.functional.interpolate(torch.tensor(a)[None, None], size=(12, 7), mode="bilinear",
                                           align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(upsample_bilinear(a, (12, 7)), want, atol=1e-12)


def test_explain_leaves_the_model_as_it_was():
    m = tiny_float64_model()
    m.train()
    r = np.random.default_rng(0)
    for p in m.parameters():
        p.grad[...] = r.standard_normal(p.shape)
    grads = [p.grad.copy() for p in m.parameters()]
    state = m.state_dict()
    flags = [(mod.training, mod.needs_input_grad) for mod in m.modules()]
    explain(m, r.standard_normal((2, 6, 6)), cls=1)
    assert [(mod.training, mod.needs_input_grad) for mod in m.modules()] == flags
    assert all(np.array_equal(g, p.grad) for g, p in zip(grads, m.parameters()))
    assert all(np.array_equal(v, m.state_dict()[k]) for k, v in state.items())
    with pytest.raises(sc.ConfigError, match="out of range"):
        explain(m, r.standard_normal((2, 6, 6)), cls=5)
    with sc.no_grad(), pytest.raises(sc.ConfigError, match="no_grad"):
        explain(m, r.standard_normal((2, 6, 6)))


def test_overlay_draws_the_heat_over_the_input():
    x = np.zeros((1, 4, 4))
    heat = np.zeros((4, 4))
    heat[1, 2] = 1.0
    img = overlay(x, heat)
    assert img.shape == (4, 4, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [0, 0, 0] and img[1, 2, 0] > 100         # red where the heat is


# ---- the endpoint --------------------------------------------------------------------
@pytest.fixture
def client():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient
    from test_serve import tiny_model

    from scratchcnn.app.serve import create_app
    with TestClient(create_app(tiny_model())) as c:
        yield c


def _png(seed=0):
    from test_serve import random_png
    return random_png(seed)


def test_explain_endpoint_answers_for_the_prediction_and_any_class(client):
    png = _png()
    top = client.post("/api/predict", files={"file": ("x.png", png, "image/png")}).json()["top"]
    default = client.post("/api/explain", files={"file": ("x.png", png, "image/png")}).json()
    assert default["class"] == default["top"] == top and default["class_name"] == ["zero", "one", "two"][top]
    for part in ("saliency", "grad_cam"):
        assert default[part]["image"].startswith("data:image/png;base64,")
        assert default[part]["map"].startswith("data:image/png;base64,")
    assert default["grad_cam"]["layer"] == 0 and default["grad_cam"]["shape"] == [8, 8]
    other = (top + 1) % 3
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    answers = [client.post("/api/explain", files={"file": ("x.png", png, "image/png")},
                           data={"class": str(other)}).json(),
               client.post("/api/explain", json={"image": url, "class": other}).json(),
               client.post(f"/api/explain?class={other}", content=png, headers={"content-type": "image/png"}).json(),
               client.post("/api/explain", json={"image": url, "class": ["zero", "one", "two"][other]}).json()]
    assert all(a == answers[0] for a in answers) and answers[0]["class"] == other
    assert answers[0]["saliency"]["image"] != default["saliency"]["image"]
    assert answers[0]["probabilities"] == pytest.approx(default["probabilities"])
    # the model serving /api/predict is unchanged
    again = client.post("/api/predict", files={"file": ("x.png", png, "image/png")}).json()
    assert again["top"] == top


@pytest.mark.parametrize("value, status", [("3", 400), ("-1", 400), ("cat", 400), ("1.5", 400)])
def test_explain_endpoint_refuses_a_bad_class(client, value, status):
    r = client.post("/api/explain", files={"file": ("x.png", _png(), "image/png")}, data={"class": value})
    assert r.status_code == status and "class" in r.json()["detail"]
    r = client.post("/api/explain", json={"image": base64.b64encode(_png()).decode(), "class": [1]})
    assert r.status_code == 400


def test_explain_endpoint_without_a_conv_layer_has_no_grad_cam():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from scratchcnn.app.serve import create_app
    model = sc.Sequential(sc.Flatten(), sc.Dense(64, 3), input_shape=(1, 8, 8))
    with TestClient(create_app(model)) as c:
        r = c.post("/api/explain", files={"file": ("x.png", _png(), "image/png")}).json()
    assert r["grad_cam"] is None and r["saliency"]["image"].startswith("data:image/png")


def test_explain_a_one_output_two_class_model():
    """A sigmoid model (one output): two probabilities [1 - s(z), s(z)], the predicted class from the
    sign of the logit, and class 0's saliency the negative of class 1's (its score is -z)."""
    sc.manual_seed(0)
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.Flatten(), sc.Dense(4 * 6 * 6, 1),
                          input_shape=(1, 6, 6))
    x = np.random.default_rng(1).random((1, 6, 6)).astype(np.float32)
    with sc.no_grad():
        z = float(model(x[None])[0, 0])
    one = explain(model, x, cls=1)
    zero = explain(model, x, cls=0)
    p1 = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(one["probabilities"], [1 - p1, p1], rtol=1e-6)
    assert explain(model, x)["class"] == int(z > 0)
    np.testing.assert_allclose(zero["input_grad"], -one["input_grad"], rtol=1e-6, atol=1e-9)
    with pytest.raises(sc.ConfigError, match="out of range for 2 classes"):
        explain(model, x, cls=2)
