"""The model side of the web application, with no web code: load the model once,
prepare inputs exactly as its training data was prepared, predict, and collect what
the page shows (feature maps, filters, summary, training run).

Forward passes write caches into the layers (and ``build`` records the input shape),
so two requests must not run the model at the same time: every use of the model goes
through :meth:`ModelService.locked`, in eval mode and under ``no_grad``.
"""
import json
import math
import os
import threading
from contextlib import contextmanager

import numpy as np

from ...errors import ModelFileError
from ...nn.module import no_grad
from . import pictures

FEATURE_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Residual")   # a block: its output


def default_preprocessing(input_shape):
    """What to assume for a model saved without metadata: pixels scaled to 0..1, no standardising."""
    c, h, w = input_shape
    return {"channels": int(c), "height": int(h), "width": int(w), "max_value": 1.0, "mean": None,
            "std": None, "white_on_black": False}


def finite(obj):
    """A copy of a JSON-like ``obj`` with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return finite(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class ModelService:
    """One loaded model shared by every request.

    model: a Sequential whose ``input_shape`` is (C, H, W); path: the file it came from
    (used to find the training run's ``history.json`` / ``metrics.json`` next to it)."""

    def __init__(self, model, path=None):
        if getattr(model, "input_shape", None) is None or len(model.input_shape) != 3:
            raise ModelFileError(f"serve needs an image model with input_shape (C, H, W); "
                                 f"{path or 'the model'} has input_shape {getattr(model, 'input_shape', None)}")
        self.model = model.eval()
        self.path = os.fspath(path) if path is not None else None
        self.metadata = dict(getattr(model, "metadata", None) or {})
        self.input_shape = tuple(int(d) for d in model.input_shape)
        self.num_classes = int(np.prod(model.output_shape(self.input_shape)))
        if self.num_classes == 1:       # one sigmoid output: a two-class model (predict_proba gives [1 - p, p])
            self.num_classes = 2
        names = self.metadata.get("class_names")
        if not isinstance(names, list) or len(names) != self.num_classes:
            names = [str(k) for k in range(self.num_classes)]
        self.class_names = [str(n) for n in names]
        self.preprocessing = self.metadata.get("preprocessing") or default_preprocessing(self.input_shape)
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path):
        from ...model import load
        return cls(load(path), path=path)

    @contextmanager
    def locked(self):
        """Hold the model alone, in eval mode, keeping no backward caches."""
        with self._lock, no_grad():
            self.model.eval()
            yield self.model

    @property
    def drawable(self):
        """A canvas makes sense for single-channel (greyscale) models."""
        return self.input_shape[0] == 1

    # ---- inputs -------------------------------------------------------
    def prepare(self, image, center=False):
        """A Pillow image -> x: (C, H, W) float32, as the training data was prepared
        (size, channels, scaling, standardising; MNIST-style centring when ``center``)."""
        from ...images import prepare_image
        x = np.asarray(prepare_image(image, self.preprocessing, center=center), dtype=np.float32)
        if x.shape != self.input_shape:   # a metadata/model mismatch, not the user's fault
            raise ModelFileError(f"preprocessing in the model file gives inputs of shape {x.shape}, "
                                 f"but the model expects {self.input_shape}")
        return x

    # ---- answers ------------------------------------------------------
    def predict(self, x):
        """x: (C, H, W) -> ``{"probabilities", "class_names", "top"}`` (top: best class index)."""
        with self.locked() as model:
            probs = model.predict_proba(x[None])[0]
        probs = [float(p) for p in probs]
        return {"probabilities": probs, "class_names": self.class_names, "top": int(np.argmax(probs))}

    def activations(self, x, max_maps=32):
        """x: (C, H, W) -> the feature maps of every conv and pooling layer, as pictures."""
        from ..introspect import activations
        wanted = [i for i, layer in enumerate(self.model.layers) if type(layer).__name__ in FEATURE_LAYERS]
        if not wanted:
            return {"layers": []}
        with self.locked() as model:
            acts = activations(model, x[None], layers=wanted)
        layers = []
        for index, name, a in acts:
            layer = self.model.layers[index]
            a = np.asarray(a)[0]
            if a.ndim not in (1, 3):            # e.g. a residual block of Dense layers: no maps
                continue
            image, shown = pictures.feature_map_grid(a, max_maps=max_maps)
            layers.append({"index": int(index), "name": str(name), "layer": repr(layer),
                           "shape": [int(d) for d in a.shape], "shown": shown, "image": image})
        return {"layers": layers}

    def explain(self, x, cls=None):
        """x: (C, H, W) -> why the model gives class ``cls`` (None: its prediction) for x: the
        saliency map (d score / d input) and Grad-CAM on the last conv layer, each drawn over the
        input, from the layers' own backward passes (:func:`scratchcnn.app.explain.explain`).
        ``cls`` is a class index or name; another value raises BadRequest (400)."""
        from ..explain import explain, normalize_heat, overlay
        from .inputs import BadRequest
        k = self.num_classes
        if cls is not None and not isinstance(cls, (int, np.integer)):
            text = str(cls).strip()
            if text in self.class_names:
                cls = self.class_names.index(text)
            elif text.lstrip("-").isdigit() and len(text) < 12:
                cls = int(text)
            else:
                raise BadRequest(400, f"class must be a class index 0..{k - 1} or one of the class names, "
                                      f"got {text[:40]!r}")
        if cls is not None and not 0 <= int(cls) < k:
            raise BadRequest(400, f"class {cls} is out of range: the model has {k} classes (0..{k - 1})")
        with self._lock:                  # gradients on: explain restores the model's flags and gradients
            e = explain(self.model, x, None if cls is None else int(cls))
            self.model.eval()
        size = 112

        def picture(heat):
            heat = normalize_heat(heat)
            return {"image": pictures.png_data_url(pictures.enlarge(overlay(x, heat), size)),
                    "map": pictures.png_data_url(pictures.enlarge(np.uint8(np.rint(255 * heat)), size))}

        probs = [float(p) for p in e["probabilities"]]
        saliency = dict(picture(e["saliency"]), max=float(e["saliency"].max()))
        cam = None
        if e["grad_cam"] is not None:
            layer = self.model.layers[e["layer"]]
            cam = dict(picture(e["grad_cam"]), max=float(e["grad_cam"].max()), layer=int(e["layer"]),
                       layer_name=repr(layer), shape=[int(d) for d in e["grad_cam_low"].shape])
        c = e["class"]
        return finite({"class": c, "class_name": self.class_names[c], "top": int(np.argmax(probs)),
                       "score": float(e["logits"][c]), "probability": probs[c], "probabilities": probs,
                       "saliency": saliency, "grad_cam": cam})

    def filters(self):
        """The first conv layer's filters as one picture (``image`` None for a model without conv)."""
        from ..introspect import first_conv_filters
        with self.locked() as model:
            w = first_conv_filters(model)
        if w is None:
            return {"image": None, "shape": None, "shown": 0}
        w = np.asarray(w)
        image, shown = pictures.filter_grid(w)
        return {"image": image, "shape": [int(d) for d in w.shape], "shown": shown}

    def summary(self):
        """Layers (index, name, depth, description, type, output shape, parameters, multiply-adds),
        totals and the text table of ``model.summary()``. The layers inside a container (a Residual
        block) follow its row, with ``depth`` > 0, ``name`` their state_dict prefix (``"3.body.0"``)
        and ``index`` the index of the model's layer holding them; the totals count each layer once."""
        from ...summary import label, layer_rows
        with self.locked() as model:
            rows = []
            for r in layer_rows(model, self.input_shape):
                rows.append({"index": int(r["name"].split(".")[0]), "name": r["name"], "depth": r["depth"],
                             "type": type(r["layer"]).__name__,
                             "layer": label(r["layer"]),
                             "output_shape": list(r["output_shape"]), "params": int(r["params"]),
                             "macs": int(r["macs"])})
            text = model.summary(print_fn=None)
            total = model.num_parameters()
            trainable = model.num_parameters(trainable_only=True)
        return {"input_shape": list(self.input_shape), "layers": rows, "total_params": total,
                "trainable_params": trainable, "macs": sum(r["macs"] for r in rows if r["depth"] == 0),
                "text": text}

    def info(self):
        """What the page needs first: data set, classes, input shape, whether to show a canvas."""
        return finite({"dataset": self.metadata.get("dataset"), "class_names": self.class_names,
                       "input_shape": list(self.input_shape), "drawable": self.drawable,
                       "preprocessing": self.preprocessing,
                       "model_file": os.path.basename(self.path) if self.path else None,
                       "model": self.metadata.get("model"), "has_run": self.run_info()["available"]})

    # ---- the training run ---------------------------------------------
    def _run_dirs(self):
        run_dir = self.metadata.get("run_dir")
        dirs = [run_dir] if isinstance(run_dir, str) else []
        if self.path:
            dirs.append(os.path.dirname(os.path.abspath(self.path)))
        return [d for d in dirs if os.path.isdir(d)]

    def _read_json(self, name):
        for folder in self._run_dirs():
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        return json.load(f)
                except (OSError, ValueError):
                    return None    # a damaged run file: show the page without it
        return None

    def run_info(self):
        """The training curves (history.json of the run, else the History saved in the model)
        and the test confusion matrix (metrics.json), when the model came from ``scratchcnn train``."""
        history = self._read_json("history.json")
        if not (isinstance(history, dict) and isinstance(history.get("history"), dict)):
            h = getattr(self.model, "history", None)
            history = h.to_dict() if h is not None and getattr(h, "epoch", None) else None
        metrics = self._read_json("metrics.json")
        metrics = metrics if isinstance(metrics, dict) else {}
        cm = metrics.get("confusion_matrix")
        if not (isinstance(cm, list) and all(isinstance(r, list) for r in cm)):
            cm = None
        names = metrics.get("class_names") if isinstance(metrics.get("class_names"), list) else self.class_names
        test = {k: metrics[k] for k in ("accuracy", "test_loss") if isinstance(metrics.get(k), (int, float))}
        return finite({"available": history is not None or cm is not None, "history": history,
                       "confusion_matrix": cm, "class_names": names, "test": test})
