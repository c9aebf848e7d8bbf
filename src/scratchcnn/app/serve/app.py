"""The FastAPI application behind ``scratchcnn serve MODEL``.

Routes (all JSON except the page and its static files; see docs/serve.md):

- ``GET  /``                 the page (static/index.html, app.js, style.css: no CDN, works offline)
- ``GET  /api/info``         data set, class names, input shape, whether the page shows a canvas
- ``GET  /api/summary``      layers, output shapes, parameters, multiply-adds, the summary table
- ``GET  /api/filters``      the first conv layer's filters as a PNG data URL
- ``GET  /api/run``          training curves and confusion matrix of the run, if known
- ``POST /api/predict``      an image -> class probabilities and the input as the model sees it
- ``POST /api/activations``  an image -> the feature maps of every conv and pooling layer

A request with a bad body (not an image, too large, wrong content type, corrupted,
a decompression bomb, malformed JSON) gets a 4xx answer ``{"detail": "..."}``.
The model is loaded once; forward passes run one at a time in a worker thread.
"""
import ipaddress
import os
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ...errors import ScratchCNNError
from . import pictures
from .inputs import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, BadRequest, BodySizeLimit, read_image
from .service import ModelService

STATIC_DIR = str(files("scratchcnn.app.serve") / "static")


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
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(ScratchCNNError)
    async def scratchcnn_error(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    async def prepared_input(request):
        image, center = await read_image(request)
        return await run_in_threadpool(service.prepare, image, center)

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

    return app


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(model_path, host="127.0.0.1", port=8000):
    """Load ``model_path`` and serve the page at http://host:port/ until Ctrl-C.

    The default host, 127.0.0.1, accepts connections from this machine only; any other
    address (e.g. 0.0.0.0) must be asked for explicitly and exposes the model to the network."""
    import uvicorn
    app = create_app(model_path)
    if not _is_loopback(host):
        print(f"warning: listening on {host}: other machines can reach this server", flush=True)
    shown = f"[{host}]" if ":" in host else host
    print(f"scratchcnn serve: {os.path.basename(os.fspath(model_path))} at http://{shown}:{port}/ "
          f"(Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["MAX_IMAGE_PIXELS", "MAX_UPLOAD_BYTES", "create_app", "run"]
