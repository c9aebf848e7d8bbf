"""The ``scratchcnn serve`` page in a real browser: headless Chromium driven by Playwright.

A model is trained for a few seconds on scikit-learn's 8x8 digits by the same code as
``scratchcnn train`` (so the run directory has history.json and metrics.json), served by
uvicorn on a free port of 127.0.0.1; the test draws a stroke with the mouse, uploads a
PNG, and checks that the probabilities, feature maps, filters, summary and training run
appear, that the page shows what the model predicts, and that it never asks for anything
outside the server. A screenshot is saved to test-artifacts/serve.png.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package: in CI
(``CI`` set) a missing one fails the test; elsewhere the test is skipped.
"""
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 30_000


def _need(ok, what):
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required in CI for the browser test")
        pytest.skip(f"{what} is not available")


@pytest.fixture(scope="module")
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need(sync_playwright is not None, "the playwright Python package")
    _need(os.access(CHROMIUM, os.X_OK), CHROMIUM)
    pytest.importorskip("uvicorn")
    return sync_playwright


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run directory written by scratchcnn's training code: (model path, loaded model, data)."""
    import scratchcnn as sc
    from scratchcnn.datasets import load_dataset
    from scratchcnn.app.experiment import TrainConfig, train
    out = tmp_path_factory.mktemp("run")
    run_dir, _ = train(TrainConfig(dataset="digits", model="small", epochs=2, out=str(out)), verbose=0)
    path = os.path.join(run_dir, "model.npz")
    data = load_dataset("digits", val_split=0.0, seed=0)
    return path, sc.load(path), data


def _digit_png(tmp_path, data, k, size=64):
    """Test digit ``k`` as a black-on-white PNG of size x size (as on paper: the page must invert it)."""
    pixels = data.x_test[k, 0] / max(float(data.x_test[k, 0].max()), 1e-8)
    image = Image.fromarray(np.uint8(255 - 255 * pixels)).resize((size, size), Image.Resampling.BILINEAR)
    path = tmp_path / f"digit{k}.png"
    image.save(path)
    return path


def test_draw_upload_and_look_inside_in_chromium(sync_playwright, trained_run, tmp_path):
    from test_serve import LiveServer

    from scratchcnn.images import prepare_image
    from scratchcnn.app.serve import create_app
    path, model, data = trained_run
    feature_layers = [i for i, layer in enumerate(model.layers)
                      if type(layer).__name__ in ("Conv2D", "MaxPool2D", "AvgPool2D")]
    ARTIFACTS.mkdir(exist_ok=True)
    with LiveServer(create_app(path)) as live, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(live.url + "/")
            page.wait_for_selector("body[data-ready='1']")

            # the parts that do not depend on the input
            assert page.is_visible("#draw") and page.is_visible("#run-card") and page.is_visible("#filters")
            assert page.locator("#summary tr").count() == len(model.layers) + 1
            assert page.locator("#confusion tr").count() == len(data.class_names) + 1
            assert page.evaluate("""() => { const c = document.getElementById('loss-chart');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let ink = 0; for (let i = 3; i < d.length; i += 4) ink += d[i] > 0; return ink; }""") > 500

            # draw a stroke (a "7") with the mouse
            box = page.locator("#draw").bounding_box()
            x0, y0 = box["x"], box["y"]
            page.mouse.move(x0 + 70, y0 + 60)
            page.mouse.down()
            page.mouse.move(x0 + 210, y0 + 60, steps=12)
            page.mouse.move(x0 + 120, y0 + 230, steps=12)
            page.mouse.up()
            page.wait_for_function(f"document.body.dataset.busy === '0' && "
                                   f"document.querySelectorAll('#feature-maps img').length === {len(feature_layers)}")
            _check_result(page, model, data)
            # the page shows what the model says about the drawing, prepared as the server prepares it
            url = page.evaluate("document.getElementById('draw').toDataURL('image/png')")
            answer = page.request.post(live.url + "/api/predict", data={"image": url, "center": True}).json()
            drawn_top = answer["class_names"][answer["top"]]
            assert page.text_content("#top-class").startswith(drawn_top + " (")

            # upload a digit from the test set, black on white
            results = int(page.evaluate("document.body.dataset.results"))
            png = _digit_png(tmp_path, data, 3)
            page.set_input_files("#upload", str(png))
            page.wait_for_function(f"Number(document.body.dataset.results) > {results} && "
                                   f"document.body.dataset.busy === '0'")
            _check_result(page, model, data)
            x = prepare_image(str(png), model.metadata["preprocessing"])
            want = data.class_names[int(model.predict_proba(x[None])[0].argmax())]
            assert page.text_content("#top-class").startswith(f"{want} (")
            page.screenshot(path=str(ARTIFACTS / "serve.png"), full_page=True)

            # a finger: a tap on a touch screen draws a dot and gets a prediction too
            touch = browser.new_context(has_touch=True, viewport={"width": 800, "height": 900}).new_page()
            touch.set_default_timeout(TIMEOUT_MS)
            touch.on("request", lambda r: requests.append(r.url))
            touch.goto(live.url + "/")
            touch.wait_for_selector("body[data-ready='1']")
            box = touch.locator("#draw").bounding_box()
            touch.touchscreen.tap(box["x"] + 140, box["y"] + 140)
            touch.wait_for_function("Number(document.body.dataset.results) >= 1 && document.body.dataset.busy === '0'")
            _check_result(touch, model, data)

            assert not errors, errors
            outside = [u for u in requests if not (u.startswith(live.url) or u.startswith("data:"))]
            assert not outside, f"the page asked for something outside the server: {outside}"
        finally:
            browser.close()
    assert (ARTIFACTS / "serve.png").stat().st_size > 10_000


def _check_result(page, model, data):
    """The probabilities and feature maps of the last input are on the page."""
    values = [float(t.rstrip("%")) for t in page.locator("#probabilities .bar-value").all_text_contents()]
    assert len(values) == len(data.class_names)
    assert abs(sum(values) - 100) < 0.1 * len(values)
    assert page.locator("#probabilities .bar.best").count() == 1
    assert page.evaluate("document.getElementById('model-input').naturalWidth") >= 8
    sizes = page.evaluate("[...document.querySelectorAll('#feature-maps img')].map(i => i.naturalWidth)")
    assert sizes and all(w > 0 for w in sizes)


def test_a_click_on_a_class_shows_its_saliency_and_grad_cam(sync_playwright, trained_run, tmp_path):
    """Upload a digit: the page explains the prediction (saliency and Grad-CAM over the input);
    a click on another class's bar re-requests /api/explain for that class and both maps change
    to the server's answer for it."""
    from test_serve import LiveServer

    from scratchcnn.app.serve import create_app
    path, model, data = trained_run
    png = _digit_png(tmp_path, data, 5)
    with LiveServer(create_app(path)) as live, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(live.url + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.set_input_files("#upload", str(png))
            page.wait_for_function("document.body.dataset.explained !== undefined && "
                                   "document.body.dataset.busy === '0'")
            top = int(page.evaluate("document.body.dataset.explained"))
            assert page.locator("#probabilities .bar.best").count() == 1
            assert page.text_content("#explain-class").startswith(data.class_names[top] + " (")
            maps = lambda: page.evaluate("[document.getElementById('saliency').src, "
                                         "document.getElementById('grad-cam').src]")
            before = maps()
            assert all(src.startswith("data:image/png;base64,") for src in before)
            assert page.evaluate("document.getElementById('saliency').naturalWidth") >= 56

            other = (top + 1) % len(data.class_names)
            count = int(page.evaluate("document.body.dataset.explanations"))
            page.click(f"#probabilities .bar-track[data-k='{other}']")
            page.wait_for_function(f"document.body.dataset.explained === '{other}' && "
                                   f"Number(document.body.dataset.explanations) > {count}")
            after = maps()
            assert after[0] != before[0] and after[1] != before[1], "both maps change with the class"
            assert page.text_content("#explain-class").startswith(data.class_names[other] + " (")
            assert page.locator("#probabilities .bar-track.explained").get_attribute("data-k") == str(other)
            # what the page shows is the server's explanation of that class for that image
            answer = page.request.post(live.url + f"/api/explain?class={other}",
                                       multipart={"file": {"name": "d.png", "mimeType": "image/png",
                                                           "buffer": png.read_bytes()}}).json()
            assert answer["class"] == other
            assert after == [answer["saliency"]["image"], answer["grad_cam"]["image"]]
            assert not errors, errors
        finally:
            browser.close()
