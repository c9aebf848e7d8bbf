"""The FastAPI application behind ``scratchcnn serve MODEL``.

Routes (all JSON except the page and its static files; see docs/serve.md):

- ``GET  /``                 the page (static/index.html, app.js, style.css: no CDN, works offline)
- ``GET  /api/info``         data set, class names, input shape, whether the page shows a canvas
- ``GET  /api/summary``      layers, output shapes, parameters, multiply-adds, the summary table
- ``GET  /api/filters``      the first conv layer's filters as a PNG data URL
- ``GET  /api/run``          training curves and confusion matrix of the run, if known
- ``POST /api/predict``      an image -> class probabilities and the input as the model sees it
- ``POST /api/activations``  an image -> the feature maps of every conv and pooling layer
- ``POST /api/explain``      an image (and ``class``) -> saliency map and Grad-CAM over the input

A request with a bad body (not an image, too large, wrong content type, corrupted,
a decompression bomb, malformed JSON) gets a 4xx answer ``{"detail": "..."}``.
The model is loaded once; forward passes run one at a time in a worker thread.
"""
import ipaddress
import logging
import os
import socket
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...errors import ConfigError, ScratchCNNError
from . import pictures
from .inputs import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, BadRequest, BodySizeLimit, read_image
from .service import ModelService

STATIC_DIR = str(files("scratchcnn.app.serve") / "static")
#: client errors (4xx) are logged here, one line each: ``400 POST /api/predict: the upload is empty ...``
log = logging.getLogger("scratchcnn.serve")


def _client_error(request, status, message, headers=None):
    """The answer to a bad request, logged as one line (never a traceback)."""
    log.warning("scratchcnn serve: %d %s %s: %s", status, request.method, request.url.path,
                " ".join(str(message).split())[:300])
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def create_app(model_path_or_model, max_upload_bytes=MAX_UPLOAD_BYTES):
    """A FastAPI application serving one model: a path to a saved model (loaded once,
    now) or a Sequential model already in memory."""
    if isinstance(model_path_or_model, (str, os.PathLike)):
        service = ModelService.from_path(model_path_or_model)
    else:
        service = ModelService(model_path_or_model)

    app = FastAPI(title="scratchcnn serve", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(BadRequest)
    async def bad_request(request, exc):
        return _client_error(request, exc.status, exc.message)

    @app.exception_handler(ScratchCNNError)
    async def scratchcnn_error(request, exc):
        return _client_error(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):          # 404, 405, a malformed multipart body (400), ...
        return _client_error(request, exc.status_code, exc.detail, getattr(exc, "headers", None))

    async def prepared_input(request):
        image, center = await read_image(request)
        return await run_in_threadpool(service.prepare, image, center)

    async def requested_class(request):
        """The ``class`` of /api/explain: ``?class=`` in the URL, else the form field or JSON key
        ``class`` of the body read_image has already read (None: the predicted class)."""
        value = request.query_params.get("class")
        kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if value is None and kind == "multipart/form-data":
            value = (await request.form()).get("class")          # the form read_image parsed, cached
        elif value is None and kind == "application/json":
            value = request.state.json_body.get("class")          # the object read_image parsed
        if isinstance(value, str) and value.strip().lower() in ("", "top", "null", "none"):
            value = None
        if isinstance(value, bool) or not (value is None or isinstance(value, (int, str))):
            raise BadRequest(400, f"class must be a class index or name, got {value!r}"[:200])
        return value

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    @app.get("/api/info")
    async def info():
        return await run_in_threadpool(service.info)

    @app.get("/api/summary")
    async def summary():
        return await run_in_threadpool(service.summary)

    @app.get("/api/filters")
    async def filters():
        return await run_in_threadpool(service.filters)

    @app.get("/api/run")
    async def run_info():
        return await run_in_threadpool(service.run_info)

    @app.post("/api/predict")
    async def predict(request: Request):
        x = await prepared_input(request)
        answer = await run_in_threadpool(service.predict, x)
        answer["input_image"] = await run_in_threadpool(pictures.model_input_picture, x)
        return answer

    @app.post("/api/activations")
    async def activations(request: Request):
        x = await prepared_input(request)
        return await run_in_threadpool(service.activations, x)

    @app.post("/api/explain")
    async def explain(request: Request):
        x = await prepared_input(request)
        cls = await requested_class(request)
        return await run_in_threadpool(service.explain, x, cls)

    return app


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(host, port):
    """Raise ConfigError (one line) unless this machine can listen on ``host:port`` now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"--host {host!r} is not an address this machine can listen on: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run(model_path, host="127.0.0.1", port=8000):
    """Load ``model_path`` and serve the page at http://host:port/ until Ctrl-C.

    The default host, 127.0.0.1, accepts connections from this machine only; any other
    address (e.g. 0.0.0.0) must be asked for explicitly and exposes the model to the network."""
    import uvicorn
    app = create_app(model_path)
    check_address(host, port)
    if not _is_loopback(host):
        print(f"warning: listening on {host}: other machines can reach this server", flush=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"scratchcnn serve: {os.path.basename(os.fspath(model_path))} at http://{shown}:{port}/ "
          f"(Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["MAX_IMAGE_PIXELS", "MAX_UPLOAD_BYTES", "create_app", "run"]
