"""The web application of ``scratchcnn serve``: its JSON endpoints, bad requests, concurrency.

Uses FastAPI's test client (no network) and, for concurrency, a real uvicorn server on
a free port of 127.0.0.1. The models are tiny and untrained: the tests compare the
server's answers with the model's own ``predict_proba`` on the same prepared input.
"""
import base64
import io
import json
import math
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import scratchcnn as sc  # noqa: E402
from scratchcnn.callbacks import History  # noqa: E402
from scratchcnn.app.serve import create_app  # noqa: E402
from scratchcnn.app.serve import app as serve_app  # noqa: E402

PREP = {"channels": 1, "height": 8, "width": 8, "max_value": 1.0, "mean": None, "std": None,
        "white_on_black": True}
NAMES = ["zero", "one", "two"]


def tiny_model(channels=1, metadata=True):
    """Conv -> ReLU -> MaxPool -> Flatten -> Dense(3): input (C, 8, 8), untrained."""
    model = sc.Sequential(sc.Conv2D(channels, 4, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2),
                          sc.Flatten(), sc.Dense(4 * 4 * 4, 3), input_shape=(channels, 8, 8))
    if metadata:
        model.metadata = {"dataset": "digits", "class_names": list(NAMES),
                          "preprocessing": dict(PREP, channels=channels)}
    return model


def png_bytes(array_or_image, fmt="PNG"):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def random_png(seed, size=(30, 40), mode="L"):
    r = np.random.default_rng(seed)
    shape = size if mode == "L" else size + (3,)
    return png_bytes(r.integers(0, 256, shape, dtype=np.uint8))


def expected_probabilities(model, data, center=False):
    from scratchcnn.images import prepare_image
    x = prepare_image(Image.open(io.BytesIO(data)), model.metadata.get("preprocessing") or
                      {"channels": model.input_shape[0], "height": 8, "width": 8, "max_value": 1.0,
                       "mean": None, "std": None, "white_on_black": False}, center=center)
    return model.predict_proba(np.asarray(x)[None])[0]


def upload(client, url, data, center=False, name="x.png", kind="image/png"):
    return client.post(url, files={"file": (name, data, kind)}, data={"center": "1" if center else "0"})


@pytest.fixture
def model():
    return tiny_model()


@pytest.fixture
def client(model):
    with TestClient(create_app(model)) as c:
        yield c


# ---- the page -------------------------------------------------------------------
def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        r = client.get(asset)
        assert r.status_code == 200 and len(r.text) > 500
        assert "http://" not in r.text and "https://" not in r.text, f"{asset} reaches outside"
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/static/../app.py").status_code == 404


def test_info_and_summary_describe_the_model(client, model):
    info = client.get("/api/info").json()
    assert info["class_names"] == NAMES and info["dataset"] == "digits"
    assert info["input_shape"] == [1, 8, 8] and info["drawable"] is True and info["has_run"] is False
    s = client.get("/api/summary").json()
    assert [r["type"] for r in s["layers"]] == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    assert [r["output_shape"] for r in s["layers"]] == [[4, 8, 8], [4, 8, 8], [4, 4, 4], [64], [3]]
    assert [r["params"] for r in s["layers"]] == [layer.num_parameters() for layer in model.layers]
    assert s["total_params"] == model.num_parameters() == 4 * 9 + 4 + 64 * 3 + 3
    assert "Total params: 235" in s["text"]


# ---- predictions ----------------------------------------------------------------
def test_predict_upload_matches_the_model_on_the_same_prepared_input(client, model):
    data = random_png(1, size=(37, 23))
    r = upload(client, "/api/predict", data)
    assert r.status_code == 200, r.text
    body = r.json()
    probs = np.array(body["probabilities"])
    np.testing.assert_allclose(probs, expected_probabilities(model, data), rtol=1e-5, atol=1e-6)
    assert math.isclose(probs.sum(), 1.0, rel_tol=1e-5)
    assert body["top"] == int(probs.argmax()) and body["class_names"] == NAMES
    header, b64 = body["input_image"].split(",", 1)
    assert header == "data:image/png;base64"
    shown = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert shown.size[0] == shown.size[1] >= 8 and shown.size[0] % 8 == 0


def test_the_three_ways_to_send_an_image_agree_and_center_is_honoured(client, model):
    ink = np.zeros((64, 64), np.uint8)
    ink[2:20, 40:60] = 255                                # a blob in a corner, for centring to move
    data = png_bytes(ink)
    by_form = upload(client, "/api/predict", data, center=True).json()["probabilities"]
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    by_json = client.post("/api/predict", json={"image": url, "center": True}).json()["probabilities"]
    by_raw = client.post("/api/predict?center=1", content=data,
                         headers={"content-type": "image/png"}).json()["probabilities"]
    np.testing.assert_allclose(by_form, by_json, rtol=0, atol=0)
    np.testing.assert_allclose(by_form, by_raw, rtol=0, atol=0)
    np.testing.assert_allclose(by_form, expected_probabilities(model, data, center=True), rtol=1e-5, atol=1e-6)
    uncentred = client.post("/api/predict", json={"image": url}).json()["probabilities"]
    np.testing.assert_allclose(uncentred, expected_probabilities(model, data), rtol=1e-5, atol=1e-6)


def test_jpeg_and_rgb_uploads_work_for_a_greyscale_model(client, model):
    data = png_bytes(Image.fromarray(np.random.default_rng(3).integers(0, 256, (50, 70, 3), np.uint8)), "JPEG")
    r = upload(client, "/api/predict", data, name="photo.jpg", kind="image/jpeg")
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["probabilities"], expected_probabilities(model, data), rtol=1e-5,
                               atol=1e-6)


def test_activations_are_the_conv_and_pool_outputs(client, model):
    from scratchcnn.app.introspect import activations
    r = upload(client, "/api/activations", random_png(2))
    assert r.status_code == 200, r.text
    layers = r.json()["layers"]
    assert [(l["index"], l["shape"]) for l in layers] == [(0, [4, 8, 8]), (2, [4, 4, 4])]
    x = np.zeros((1, 1, 8, 8), np.float32)
    wanted = {i: a.shape[1:] for i, _, a in activations(model, x)}
    for l in layers:
        assert tuple(l["shape"]) == wanted[l["index"]] and l["shown"] == 4
        img = Image.open(io.BytesIO(base64.b64decode(l["image"].split(",", 1)[1])))
        h, w = l["shape"][1:]
        k = math.ceil(40 / h)                             # maps enlarged to >= 40 px, 2 px gaps
        assert img.size == (4 * w * k + 3 * 2, h * k)


def test_filters_picture_has_one_tile_per_first_layer_filter(client, model):
    f = client.get("/api/filters").json()
    assert f["shape"] == list(model.layers[0].weight.shape) and f["shown"] == 4
    img = Image.open(io.BytesIO(base64.b64decode(f["image"].split(",", 1)[1])))
    k = math.ceil(32 / 3)
    assert img.size == (4 * 3 * k + 3 * 2, 3 * k)


def test_model_without_metadata_gets_numbered_classes_and_0_to_1_scaling():
    model = tiny_model(metadata=False)
    with TestClient(create_app(model)) as c:
        assert c.get("/api/info").json()["class_names"] == ["0", "1", "2"]
        data = random_png(4)
        r = upload(c, "/api/predict", data)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["probabilities"], expected_probabilities(model, data), rtol=1e-5,
                                   atol=1e-6)
        assert c.get("/api/run").json()["available"] is False


def test_colour_model_has_no_canvas_but_takes_uploads():
    model = tiny_model(channels=3)
    with TestClient(create_app(model)) as c:
        assert c.get("/api/info").json()["drawable"] is False
        data = random_png(5, mode="RGB")
        r = upload(c, "/api/predict", data)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["probabilities"], expected_probabilities(model, data), rtol=1e-5,
                                   atol=1e-6)
        assert c.get("/api/filters").json()["shape"] == [4, 3, 3, 3]


# ---- the training run -------------------------------------------------------------
def test_run_curves_and_confusion_matrix_come_from_the_run_directory(tmp_path, model):
    run = tmp_path / "run"
    run.mkdir()
    hist = {"epoch": [0, 1], "history": {"loss": [1.5, 0.7], "accuracy": [0.4, 0.8],
                                         "val_loss": [1.2, float("nan")], "val_accuracy": [0.5, 0.7]}}
    (run / "history.json").write_text(json.dumps(hist))
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.75, "test_loss": 0.8, "class_names": NAMES,
                                                  "confusion_matrix": [[3, 1, 0], [0, 2, 2], [1, 0, 3]]}))
    model.metadata["run_dir"] = str(run)
    path = tmp_path / "elsewhere" / "model.npz"
    sc.save(model, path)
    with TestClient(create_app(str(path))) as c:
        assert c.get("/api/info").json()["has_run"] is True
        r = c.get("/api/run")
        assert r.status_code == 200
        body = r.json()
    assert body["history"]["history"]["loss"] == [1.5, 0.7]
    assert body["history"]["history"]["val_loss"] == [1.2, None]          # NaN is not JSON
    assert body["confusion_matrix"] == [[3, 1, 0], [0, 2, 2], [1, 0, 3]]
    assert body["test"] == {"accuracy": 0.75, "test_loss": 0.8}


def test_run_curves_fall_back_to_the_history_saved_in_the_model(tmp_path, model):
    model.history = History({"loss": [2.0, 1.0, 0.5], "accuracy": [0.2, 0.5, 0.9]}, [0, 1, 2])
    model.metadata["run_dir"] = str(tmp_path / "deleted-run")
    path = tmp_path / "model.npz"
    sc.save(model, path)
    with TestClient(create_app(path)) as c:
        body = c.get("/api/run").json()
    assert body["available"] is True and body["confusion_matrix"] is None
    assert body["history"]["history"]["loss"] == [2.0, 1.0, 0.5]


# ---- bad requests: a clear 4xx, never a 500 ----------------------------------------
def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(side=100_000):
    """A valid ~100-byte PNG header claiming side x side greyscale pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def corrupted_png():
    data = bytearray(random_png(6, size=(64, 64)))
    return bytes(data[:len(data) // 2])                     # header intact, pixels cut off


def gif_bytes():
    return png_bytes(Image.new("L", (8, 8)), "GIF")


BAD = [
    ("not an image", dict(files={"file": ("notes.txt", b"hello, I am text", "text/plain")}), 400, "not an image"),
    ("empty upload", dict(files={"file": ("a.png", b"", "image/png")}), 400, "empty"),
    ("no file field", dict(data={"center": "1"}, files={"other": ("a.png", b"x", "image/png")}), 400, "field"),
    ("GIF", dict(files={"file": ("a.gif", gif_bytes(), "image/gif")}), 415, "GIF"),
    ("corrupted PNG", dict(files={"file": ("a.png", corrupted_png(), "image/png")}), 400, "corrupted"),
    ("decompression bomb", dict(files={"file": ("a.png", bomb_png(), "image/png")}), 413, "too large"),
    ("36 megapixels", dict(files={"file": ("a.png", bomb_png(6000), "image/png")}), 413, "6000 x 6000"),
    ("wrong content type", dict(content=b"abc", headers={"content-type": "text/plain"}), 415, "text/plain"),
    ("no content type", dict(content=b"abc"), 415, "content type"),
    ("malformed JSON", dict(content=b'{"image": "data:', headers={"content-type": "application/json"}),
     400, "malformed JSON"),
    ("JSON not an object", dict(json=[1, 2]), 400, "object"),
    ("JSON image not a string", dict(json={"image": 5}), 400, "string"),
    ("bad base64", dict(json={"image": "data:image/png;base64,@@@@"}), 400, "base64"),
    ("data URL of text", dict(json={"image": "data:text/plain;base64,aGVsbG8="}), 415, "text/plain"),
    ("raw body not an image", dict(content=b"\x89PNG garbage", headers={"content-type": "image/png"}),
     400, "not an image"),
    ("broken multipart", dict(content=b"--xyz\r\nbroken", headers={"content-type": "multipart/form-data"}),
     400, ""),
]


@pytest.mark.parametrize("what, kwargs, status, words", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("url", ["/api/predict", "/api/activations"])
def test_bad_requests_get_a_clear_4xx(client, url, what, kwargs, status, words):
    r = client.post(url, **kwargs)
    assert r.status_code == status, (what, r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and words.lower() in detail.lower()
    assert "Traceback" not in r.text


def test_oversized_uploads_get_413_with_or_without_content_length(model):
    big = random_png(7, size=(64, 64))
    small = png_bytes(np.zeros((8, 8), np.uint8))
    with TestClient(create_app(model, max_upload_bytes=len(big) // 2)) as c:
        r = upload(c, "/api/predict", big)
        assert r.status_code == 413 and "too large" in r.json()["detail"]

        def chunks():                                     # no Content-Length: counted as it streams
            for i in range(0, len(big), 100):
                yield big[i:i + 100]
        r = c.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
        assert r.status_code == 413, r.text
        assert upload(c, "/api/predict", small).status_code == 200
    assert serve_app.MAX_UPLOAD_BYTES >= 1 << 20


def test_wrong_method_and_unknown_route_are_4xx(client):
    assert client.get("/api/predict").status_code == 405
    assert client.get("/api/nothing").status_code == 404


def test_create_app_reports_a_bad_model_file(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(sc.ModelFileError, match="bad.npz"):
        create_app(str(path))


def test_run_listens_on_localhost_by_default(monkeypatch, tmp_path, model):
    import uvicorn
    path = tmp_path / "m.npz"
    sc.save(model, path)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    serve_app.run(str(path))
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8000
    assert seen["app"].state.service.class_names == NAMES
    serve_app.run(str(path), host="0.0.0.0", port=8123)
    assert seen["host"] == "0.0.0.0" and seen["port"] == 8123


# ---- concurrency, on a real server ----------------------------------------------------
class LiveServer:
    """uvicorn serving ``app`` in a thread on a free port of 127.0.0.1."""

    def __init__(self, app):
        import uvicorn
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def test_concurrent_requests_each_get_their_own_answer(tmp_path):
    model = tiny_model()
    path = tmp_path / "model.npz"
    sc.save(model, path)
    loaded = sc.load(path)
    images = [random_png(100 + i, size=(8 + i, 8 + 2 * i)) for i in range(12)]
    expected = [expected_probabilities(loaded, d) for d in images]
    with LiveServer(create_app(str(path))) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        def ask(i):
            url = "/api/predict" if i % 2 == 0 else "/api/activations"
            r = http.post(url, files={"file": ("x.png", images[i % 12], "image/png")})
            return i, r.status_code, r.json()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(ask, range(48)))
    for i, status, body in results:
        assert status == 200, body
        if i % 2 == 0:
            np.testing.assert_allclose(body["probabilities"], expected[i % 12], rtol=1e-5, atol=1e-6)
        else:
            assert [l["index"] for l in body["layers"]] == [0, 2]


class _ServeConcurrencyProbe(sc.Module):
    """Identity layer that records how many forward passes run at once, and whether
    gradients (and so layer caches) were enabled while they ran."""

    def __init__(self):
        super().__init__()
        self.guard = threading.Lock()
        self.running = self.most = self.calls = 0
        self.grad_seen = False

    def forward(self, x):
        from scratchcnn.nn.module import is_grad_enabled
        with self.guard:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
            self.grad_seen |= is_grad_enabled()
        time.sleep(0.01)
        with self.guard:
            self.running -= 1
        return x


def test_forward_passes_run_one_at_a_time_under_no_grad():
    probe = _ServeConcurrencyProbe()
    model = tiny_model()
    model = sc.Sequential(probe, *model.layers, input_shape=(1, 8, 8))
    model.metadata = tiny_model().metadata
    with LiveServer(create_app(model)) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        def ask(i):
            url = "/api/predict" if i % 2 == 0 else "/api/activations"
            return http.post(url, files={"file": ("x.png", random_png(i), "image/png")}).status_code
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(24))) == {200}
    assert probe.calls >= 24 and probe.most == 1 and not probe.grad_seen
