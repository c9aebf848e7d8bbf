"""Save and load a whole model in one ``.npz`` file, with no pickle.

The file is a NumPy zip archive read with ``allow_pickle=False``:

- ``__scratchcnn__``: a JSON string (architecture, dtype, metadata, history,
  optimizer hyper-parameters, format version);
- ``param/<name>``: every parameter and buffer by its state_dict name;
- ``optim/<i>/<buffer>``: the optimizer's per-parameter buffers (momentum, Adam moments).

Writes go to a temporary file in the same folder, flushed to disk, then renamed over
the destination (:func:`scratchcnn.fileio.atomic_write`), so an interrupted save never destroys
the previous file.

``scratchcnn.load`` (:func:`scratchcnn.model.load`) rebuilds the top-level model as a
:class:`scratchcnn.Sequential` with the training API; :func:`load` here takes the class to
build it as (default: the layer floor's container, :class:`scratchcnn.nn.Sequential`).
"""
import json
import os
import zipfile

import numpy as np

from .callbacks import History
from .errors import ConfigError, ModelFileError
from .fileio import atomic_write
from .nn.module import LAYER_REGISTRY
from .optim import OPTIMIZERS

FORMAT = "scratchcnn-model"
VERSION = 1
META_KEY = "__scratchcnn__"


def save(model, path, optimizer=None):
    """Write ``model`` (architecture, weights, buffers, metadata, history and the optimizer
    state, ``optimizer`` or ``model.optimizer``) to ``path``."""
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    arrays = {f"param/{k}": v for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "version": VERSION,
            "architecture": {"class": type(model).__name__, "config": model.config()},
            "dtype": str(model.dtype or np.dtype(np.float32)),
            "metadata": getattr(model, "metadata", {}),
            "history": model.history.to_dict() if getattr(model, "history", None) is not None else None,
            "optimizer": None}
    if optimizer is not None:
        sd = optimizer.state_dict()
        index = {id(p): i for i, p in enumerate(model.parameters())}
        try:
            positions = [index[id(p)] for p in optimizer.params]
        except KeyError:
            raise ConfigError("save: the optimizer holds parameters that are not the model's") from None
        meta["optimizer"] = {"type": sd["type"], "config": sd["config"], "steps": sd["steps"],
                             "initial_lr": sd["initial_lr"], "params": positions,
                             "buffers": [sorted(s) for s in sd["state"]]}
        for i, s in enumerate(sd["state"]):
            for k, v in s.items():
                arrays[f"optim/{i}/{k}"] = v
    arrays[META_KEY] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def _read(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if META_KEY not in npz.files:
                raise ModelFileError(f"{path!r} is a NumPy archive but not a scratchcnn model "
                                     f"(no {META_KEY} entry)")
            meta = json.loads(str(npz[META_KEY]))
            arrays = {k: npz[k] for k in npz.files if k != META_KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path!r} is not a readable scratchcnn model file "
                             f"(corrupted or truncated?): {exc}") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version", 0) > VERSION:
        raise ModelFileError(f"{path!r}: written by a newer scratchcnn (format version {meta['version']})")
    return meta, arrays


def build_module(spec, cls=None):
    """Rebuild a module from ``{"class": name, "config": {...}}`` (as saved); ``cls``, if given,
    is the class to build this (outermost) module as, instead of the registered one."""
    name, config = spec["class"], dict(spec.get("config", {}))
    cls = cls or LAYER_REGISTRY.get(name)
    if cls is None:
        raise ModelFileError(f"unknown layer type {name!r} in model file")
    if name == "Sequential":
        layers = [build_module(s) for s in config.pop("layers")]
        return cls(*layers, input_shape=config.get("input_shape"))
    return cls(**config)


def load(path, with_optimizer=True, model_class=None):
    """Load a model saved by :func:`save`; it predicts exactly as the saved one did.
    The optimizer (if one was saved) is rebuilt as ``model.optimizer``. ``model_class``: the
    class of the outermost Sequential (default :class:`scratchcnn.nn.Sequential`)."""
    meta, arrays = _read(path)
    try:
        arch = meta["architecture"]
        root = model_class if isinstance(arch, dict) and arch.get("class") == "Sequential" else None
        model = build_module(arch, root)
        dtype = np.dtype(meta.get("dtype", "float32"))
        if dtype != np.float32:
            model.to(dtype)
        state = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
        model.load_state_dict(state)
    except ModelFileError:
        raise
    except (ConfigError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{os.fspath(path)!r}: model file does not match its architecture: {exc}") from None
    model.metadata = meta.get("metadata") or {}
    if meta.get("history"):
        model.history = History.from_dict(meta["history"])
    opt = meta.get("optimizer")
    if with_optimizer and opt:
        cls = OPTIMIZERS.get(opt["type"].lower())
        if cls is None:
            raise ModelFileError(f"{os.fspath(path)!r}: unknown optimizer {opt['type']!r}")
        params = model.parameters()
        optimizer = cls([params[i] for i in opt["params"]], lr=opt["config"]["lr"])
        optimizer.load_state_dict({
            "type": opt["type"], "config": opt["config"], "steps": opt["steps"],
            "initial_lr": opt["initial_lr"],
            "state": [{k: arrays[f"optim/{i}/{k}"] for k in names} for i, names in enumerate(opt["buffers"])]})
        model.optimizer = optimizer
    return model
