"""``scratchcnn serve``: a local web page to draw or upload an image, see the model's
prediction and look inside the network (feature maps, filters, summary, training run).

    >>> from scratchcnn.app.serve import create_app, run
    >>> app = create_app("runs/digits-small-.../model.npz")   # a FastAPI application
    >>> run("model.npz", host="127.0.0.1", port=8000)           # serve it with uvicorn

FastAPI, uvicorn and python-multipart are needed (``pip install scratchcnn[serve]``);
they are imported only when this package is.
"""
from .app import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, create_app, run

__all__ = ["MAX_IMAGE_PIXELS", "MAX_UPLOAD_BYTES", "create_app", "run"]
