"""Fuzz every endpoint of ``scratchcnn serve``: bodies of every content type (random bytes, random
JSON, deeply nested JSON, data URLs of the wrong kind, images that are not PNG/JPEG, truncated or
oversized images, broken multipart forms), wrong methods, unknown paths, lying headers.

Every answer must be 4xx with a JSON ``{"detail": ...}``; a 5xx fails the case (the test client
is told not to re-raise server errors, so a 500 is seen as the browser would see it). Client
errors are logged as one line each.
"""
import base64
import io
import json
import logging
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import scratchcnn as sc  # noqa: E402
from scratchcnn.app.serve import create_app  # noqa: E402
from .fuzzlib import web_error  # noqa: E402

ENTRY = "web"
POSTS = ["/api/predict", "/api/activations"]
GETS = ["/api/info", "/api/summary", "/api/filters", "/api/run", "/"]


@pytest.fixture(scope="module")
def client():
    sc.manual_seed(0)
    model = sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(),
                          sc.Dense(2 * 4 * 4, 3), input_shape=(1, 8, 8))
    model.metadata = {"class_names": ["a", "b", "c"],
                      "preprocessing": {"channels": 1, "height": 8, "width": 8, "max_value": 1.0, "mean": None,
                                        "std": None, "white_on_black": True}}
    with TestClient(create_app(model), raise_server_exceptions=False) as c:
        yield c


def image_bytes(fmt, size=(12, 10), seed=0):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def png_claiming(width, height):
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


CONTENT_TYPES = [None, "image/png", "image/jpeg", "application/json", "multipart/form-data",
                 "multipart/form-data; boundary=xyz", "text/plain", "application/octet-stream", "image/gif",
                 "application/x-www-form-urlencoded", "IMAGE/PNG", "application/json; charset=utf-16", ""]


@settings(max_examples=250)
@given(path=st.sampled_from(POSTS), body=st.binary(max_size=300), kind=st.sampled_from(CONTENT_TYPES),
       center=st.sampled_from([None, "1", "yes", "x", "", "\u00e9"]))
def test_random_bodies_of_every_content_type(client, path, body, kind, center):
    headers = {} if kind is None else {"content-type": kind}
    url = path + (f"?center={center}" if center is not None else "")
    web_error(ENTRY, f"random body ({kind or 'no content type'})", client.post(url, content=body, headers=headers))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                      max_size=4), max_leaves=12)


@settings(max_examples=250)
@given(path=st.sampled_from(POSTS), doc=JSON, with_image=st.booleans(), image=JSON)
def test_random_json_documents(client, path, doc, with_image, image):
    if with_image:
        doc = {"image": image, "center": doc}
    web_error(ENTRY, "random JSON", client.post(path, content=json.dumps(doc), headers={"content-type":
                                                                                      "application/json"}))


@settings(max_examples=60)
@given(path=st.sampled_from(POSTS), depth=st.integers(17, 200_000), kind=st.sampled_from(["[", "{", "mixed"]),
       inside=st.booleans())
def test_deeply_nested_json(client, path, depth, kind, inside):
    if kind == "[":
        nested = "[" * depth + "]" * depth
    elif kind == "{":
        nested = '{"a":' * depth + "0" + "}" * depth
    else:
        nested = '[{"a":' * (depth // 2) + "0" + "}]" * (depth // 2)
    body = '{"image": "x", "center": ' + nested + "}" if inside else nested
    web_error(ENTRY, "deeply nested JSON", client.post(path, content=body, headers={"content-type": "application/json"}),
              statuses={400, 413})


@settings(max_examples=120)
@given(path=st.sampled_from(POSTS), kind=st.sampled_from(
    ["gif", "bmp", "tiff", "webp", "truncated png", "truncated jpeg", "png claiming 100000x100000",
     "png claiming 0x5", "data URL of gif", "data URL not base64", "data URL of text", "bad base64", "empty",
     "png claiming 20000x20", "ico"]), form=st.sampled_from(["json", "multipart", "raw"]), seed=st.integers(0, 999))
def test_images_that_are_not_usable(client, path, kind, form, seed):
    mime = "image/png"
    if kind in ("gif", "bmp", "tiff", "webp", "ico", "data URL of gif"):
        fmt = {"gif": "GIF", "bmp": "BMP", "tiff": "TIFF", "webp": "WEBP", "ico": "ICO", "data URL of gif": "GIF"}[kind]
        data = image_bytes(fmt, seed=seed)
        mime = "image/gif" if kind == "data URL of gif" else mime
    elif kind == "truncated png":
        raw = image_bytes("PNG", (40, 40), seed)
        data = raw[: 8 + seed % (len(raw) // 2)]
    elif kind == "truncated jpeg":
        raw = image_bytes("JPEG", (40, 40), seed)
        data, mime = raw[: 4 + seed % (len(raw) // 2)], "image/jpeg"
    elif kind.startswith("png claiming"):
        w, h = (int(v) for v in kind.split()[-1].split("x"))
        data = png_claiming(w, h)
    elif kind == "data URL of text":
        data, mime = b"hello", "text/html"
    else:
        data = b""
    if form == "json":
        text = base64.b64encode(data).decode()
        if kind == "data URL not base64":
            value = "data:image/png," + text
        elif kind == "bad base64":
            value = text[:-1] + "!*" if text else "!!!"
        else:
            value = f"data:{mime};base64,{text}"
        response = client.post(path, json={"image": value, "center": bool(seed % 2)})
    elif form == "multipart":
        response = client.post(path, files={"file": ("x.png", data, mime)})
    else:
        response = client.post(path, content=data, headers={"content-type": mime if mime.startswith("image/")
                                                            else "image/png"})
    web_error(ENTRY, f"unusable image ({kind})", response)


@settings(max_examples=60)
@given(path=st.sampled_from(POSTS), kind=st.sampled_from(
    ["no file field", "file as text field", "empty file", "many fields", "many files", "broken boundary",
     "no boundary", "garbage parts"]), seed=st.integers(0, 999))
def test_broken_multipart_forms(client, path, kind, seed):
    png = image_bytes("PNG", seed=seed)
    if kind == "no file field":
        r = client.post(path, files={"image": ("x.png", png, "image/png")})
    elif kind == "file as text field":
        r = client.post(path, data={"file": "hello"}, files={"other": ("a", b"b")})
    elif kind == "empty file":
        r = client.post(path, files={"file": ("x.png", b"", "image/png")})
    elif kind == "many fields":
        r = client.post(path, data={f"f{i}": "x" for i in range(20)}, files={"file": ("x.png", png, "image/png")})
    elif kind == "many files":
        r = client.post(path, files=[("file", (f"{i}.png", png, "image/png")) for i in range(5)])
    elif kind == "broken boundary":
        body = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" + png[:20]
        r = client.post(path, content=body, headers={"content-type": "multipart/form-data; boundary=xyz"})
    elif kind == "no boundary":
        r = client.post(path, content=png, headers={"content-type": "multipart/form-data"})
    else:
        body = np.random.default_rng(seed).integers(0, 256, 200, dtype=np.uint8).tobytes()
        r = client.post(path, content=b"--xyz\r\n" + body, headers={"content-type": "multipart/form-data; boundary=xyz"})
    web_error(ENTRY, f"multipart ({kind})", r)


@settings(max_examples=120)
@given(method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST"]),
       path=st.one_of(st.sampled_from(POSTS + GETS + ["/static/../../etc/passwd", "/static/nope.js", "/api",
                                                      "/api/", "/api/predict/x", "/%2e%2e/%2e%2e", "/static/",
                                                      "/api/info/../../x", "/index.html"]),
                      st.text(alphabet="abcdefghij/._-%", min_size=1, max_size=20).map(lambda t: "/zz" + t)))
def test_wrong_methods_and_unknown_paths(client, method, path):
    if (method == "GET" and path in GETS) or (method == "POST" and path in POSTS):
        method = "DELETE"
    web_error(ENTRY, "wrong method or unknown path", client.request(method, path), statuses={404, 405})


@settings(max_examples=40)
@given(path=st.sampled_from(POSTS), length=st.sampled_from(["abc", "-1", "99999999999", "1e9", " 5", "10485761"]))
def test_lying_content_length(client, path, length):
    r = client.post(path, content=b"x" * 10, headers={"content-type": "image/png", "content-length": length})
    web_error(ENTRY, "lying Content-Length", r, statuses={400, 413})


def test_bodies_over_the_limit(client):
    big = b"\0" * (10 * 1024 * 1024 + 1)
    for kind, r in (("raw", client.post(POSTS[0], content=big, headers={"content-type": "image/png"})),
                    ("json", client.post(POSTS[1], content=b'{"image": "' + big.replace(b"\0", b"A") + b'"}',
                                         headers={"content-type": "application/json"})),
                    ("chunked", client.post(POSTS[0], content=iter([big[:5 << 20], big[5 << 20:]]),
                                            headers={"content-type": "image/png"}))):
        web_error(ENTRY, f"body over 10 MiB ({kind})", r, statuses={413})


def test_client_errors_are_logged_as_one_line(client, caplog):
    with caplog.at_level(logging.WARNING, logger="scratchcnn.serve"):
        for body in (b"[" * 5000, b"not json", b""):
            client.post(POSTS[0], content=body, headers={"content-type": "application/json"})
    records = [r for r in caplog.records if r.name == "scratchcnn.serve"]
    assert len(records) == 3
    for r in records:
        assert "\n" not in r.getMessage() and r.exc_info is None and "400 POST /api/predict" in r.getMessage()
