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
import math
import os
import zipfile

import numpy as np

from .callbacks import History
from .errors import ConfigError, ModelFileError, ScratchCNNError
from .fileio import atomic_write, json_depth_exceeds
from .nn.module import LAYER_REGISTRY
from .nn.sizes import check_model_size, format_bytes, memory_limit
from .optim import OPTIMIZERS

FORMAT = "scratchcnn-model"
VERSION = 1
META_KEY = "__scratchcnn__"
#: limits checked before anything of a file is parsed or allocated
MAX_META_BYTES = 64 << 20       # the JSON entry (as stored: 4 bytes a character)
MAX_JSON_DEPTH = 64             # nested arrays / objects in it
MAX_ENTRIES = 100_000           # arrays in the archive
MAX_SIDE = 1 << 16              # one axis of an input shape
FLOAT_DTYPES = ("float16", "float32", "float64")


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
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save: the model's metadata, history or config cannot be written as JSON: {exc} "
                          f"(metadata must hold only strings, numbers, booleans, lists and dicts)") from None
    arrays[META_KEY] = np.array(text)
    try:
        target = os.fspath(path)
    except TypeError:
        raise ConfigError(f"save: the path must be a str or os.PathLike, got {type(path).__name__}") from None
    if os.path.isdir(target):
        raise ModelFileError(f"save: {target!r} is a directory; give a file name such as model.npz")
    try:
        atomic_write(target, lambda f: np.savez(f, **arrays))
    except OSError as exc:
        raise ModelFileError(f"save: cannot write the model file {target!r}: {exc.strerror or exc}") from None
    return path


def _read(path):
    """``(meta, arrays)`` of a model file, every entry checked before it is loaded: the zip's
    members, each array's .npy header (dtype, shape, the bytes it declares against the bytes it
    holds, the memory all of them need), then the JSON's size and nesting before it is parsed."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise ModelFileError(f"a model file path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not os.path.exists(path):
        raise ModelFileError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"model file {path!r} is a directory, not a model file (.npz)")
    try:
        with zipfile.ZipFile(path) as zf:
            headers = _check_members(path, zf)
        if META_KEY not in headers:
            raise ModelFileError(f"{path!r} is a NumPy archive but not a scratchcnn model "
                                 f"(no {META_KEY} entry)")
        with np.load(path, allow_pickle=False) as npz:
            text = str(npz[META_KEY])
            if json_depth_exceeds(text, MAX_JSON_DEPTH):
                raise ModelFileError(f"{path!r}: the model's JSON nests deeper than {MAX_JSON_DEPTH} levels")
            meta = json.loads(text)
            arrays = {k: npz[k] for k in headers if k != META_KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError, RecursionError,
            NotImplementedError, RuntimeError, UnicodeError) as exc:
        raise ModelFileError(f"{path!r} is not a readable scratchcnn model file "
                             f"(corrupted or truncated?): {exc}") from None
    _check_meta(path, meta)
    return meta, arrays


def _check_members(path, zf):
    """{key: (shape, dtype)} of every array of the archive, from the .npy headers, checked."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ModelFileError(f"{path!r}: {len(infos)} entries in the archive, more than a model holds "
                             f"({MAX_ENTRIES} at most)")
    headers, total = {}, 0
    limit = memory_limit()
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ModelFileError(f"{path!r}: unexpected entry {info.filename!r} (a model file holds .npy arrays)")
        key = info.filename[:-4]
        if key in headers:
            raise ModelFileError(f"{path!r}: entry {key!r} appears twice")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ModelFileError(f"{path!r}: entry {key!r} is a .npy file of version {version}, "
                                     f"expected 1.0 or 2.0")
            offset = f.tell()
        if dtype.hasobject:
            raise ModelFileError(f"{path!r}: entry {key!r} holds Python objects (dtype {dtype}); a model "
                                 f"file holds numbers only, never pickles")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > limit - total:
            raise ModelFileError(f"{path!r}: entry {key!r} declares an array of shape {shape} ({dtype}) that "
                                 f"would need {format_bytes(nbytes)}, more than the {format_bytes(limit)} "
                                 f"of memory available: refused before reading it")
        if info.file_size - offset != nbytes:
            raise ModelFileError(f"{path!r}: entry {key!r} declares shape {shape} ({dtype}, {nbytes:,} bytes) but "
                                 f"holds {info.file_size - offset:,} bytes (truncated or corrupted)")
        if key == META_KEY and (dtype.kind not in "US" or shape != () or nbytes > MAX_META_BYTES):
            raise ModelFileError(f"{path!r}: the {META_KEY} entry must be one string of at most "
                                 f"{format_bytes(MAX_META_BYTES)}, got shape {shape} {dtype} ({format_bytes(nbytes)})")
        total += nbytes
        headers[key] = (shape, dtype)
    return headers


# ---- the model's JSON, checked entry by entry before anything is built ---------------------------
def _bad(path, what, expected, got):
    shown = json.dumps(got)[:80] if _jsonable(got) else repr(got)[:80]
    return ModelFileError(f"{path!r}: {what} must be {expected}, got {shown}")


def _jsonable(v):
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError, RecursionError):
        return False


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v, finite=True):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (not finite or math.isfinite(v))


def _check_meta(path, meta):
    if not isinstance(meta, dict):
        raise _bad(path, "the model's JSON", "an object", meta)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if not _is_int(version) or version < 1:
        raise _bad(path, "the format version", f"an integer from 1 to {VERSION}", version)
    if version > VERSION:
        raise ModelFileError(f"{path!r}: written by a newer scratchcnn (format version {version}; this one "
                             f"reads up to {VERSION}): upgrade scratchcnn")
    arch = meta.get("architecture")
    _check_layer_spec(path, arch, "the architecture")
    dtype = meta.get("dtype", "float32")
    if dtype not in FLOAT_DTYPES:
        raise _bad(path, '"dtype"', f"one of {', '.join(FLOAT_DTYPES)}", dtype)
    _check_metadata(path, meta.get("metadata"))
    _check_history(path, meta.get("history"))
    opt = meta.get("optimizer")
    if opt is not None:
        _check_optimizer_meta(path, opt)


def _check_layer_spec(path, spec, where):
    if not isinstance(spec, dict):
        raise _bad(path, where, 'an object {"class": ..., "config": {...}}', spec)
    name, config = spec.get("class"), spec.get("config", {})
    if not isinstance(name, str):
        raise _bad(path, f'{where}: "class"', "a layer type name", name)
    if name not in LAYER_REGISTRY or name.startswith("_"):
        raise ModelFileError(f"{path!r}: {where}: unknown layer type {name!r} in model file "
                             f"(known: {', '.join(sorted(k for k in LAYER_REGISTRY if not k.startswith('_')))})")
    if not isinstance(config, dict):
        raise _bad(path, f'{where} ({name}): "config"', "an object", config)
    if name == "Sequential":
        layers, shape = config.get("layers"), config.get("input_shape")
        if not isinstance(layers, list):
            raise _bad(path, f'{where} (Sequential): "layers"', "a list of layers", layers)
        if shape is not None and not (isinstance(shape, list) and 1 <= len(shape) <= 4 and
                                      all(_is_int(d) and 1 <= d <= MAX_SIDE for d in shape)):
            raise _bad(path, f'{where} (Sequential): "input_shape"',
                       f"null or a list of 1 to 4 sizes from 1 to {MAX_SIDE}", shape)
        extra = set(config) - {"layers", "input_shape"}
        if extra:
            raise ModelFileError(f"{path!r}: {where} (Sequential): unexpected config keys {sorted(extra)}")
        prefix = "" if where == "the architecture" else where + "."
        for i, sub in enumerate(layers):
            _check_layer_spec(path, sub, f"{prefix or 'layer '}{i}")
    elif name == "Residual":
        if "body" not in config:
            raise ModelFileError(f"{path!r}: {where} (Residual): the config lacks its \"body\"")
        extra = set(config) - {"body", "shortcut"}
        if extra:
            raise ModelFileError(f"{path!r}: {where} (Residual): unexpected config keys {sorted(extra)}")
        _check_layer_spec(path, config["body"], f"{where}.body")
        if config.get("shortcut") is not None:
            _check_layer_spec(path, config["shortcut"], f"{where}.shortcut")


def _check_metadata(path, metadata):
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise _bad(path, '"metadata"', "an object", metadata)
    names = metadata.get("class_names")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise _bad(path, '"metadata.class_names"', "a non-empty list of strings", names)
    for key in ("dataset", "run_dir", "model"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise _bad(path, f'"metadata.{key}"', "a string", metadata[key])
    prep = metadata.get("preprocessing")
    if prep is not None:
        _check_preprocessing(path, prep)


def _check_preprocessing(path, prep):
    where = '"metadata.preprocessing"'
    if not isinstance(prep, dict):
        raise _bad(path, where, "an object", prep)
    for key in ("channels", "height", "width"):
        v = prep.get(key)
        if not _is_int(v) or not 1 <= v <= (3 if key == "channels" else MAX_SIDE):
            raise _bad(path, f"{where[:-1]}.{key}\"", "1 or 3" if key == "channels" else
                       f"an integer from 1 to {MAX_SIDE}", v)
    if prep["channels"] == 2:
        raise _bad(path, f'{where[:-1]}.channels"', "1 or 3", 2)
    if prep.get("max_value") is not None and not (_is_number(prep["max_value"]) and prep["max_value"] > 0):
        raise _bad(path, f'{where[:-1]}.max_value"', "a positive number", prep["max_value"])
    if prep.get("normalize", "scale") not in ("scale", "standardize", "none", None):
        raise _bad(path, f'{where[:-1]}.normalize"', '"scale", "standardize" or null', prep["normalize"])
    for key in ("mean", "std"):
        v = prep.get(key)
        if v is not None and not (isinstance(v, list) and len(v) == prep["channels"] and
                                  all(_is_number(a) and (key == "mean" or a > 0) for a in v)):
            raise _bad(path, f'{where[:-1]}.{key}"', f"null or a list of {prep['channels']} "
                       f"{'numbers' if key == 'mean' else 'positive numbers'}", v)
    if prep.get("normalize") == "standardize" and (prep.get("mean") is None) != (prep.get("std") is None):
        raise ModelFileError(f"{path!r}: {where} gives only one of mean and std")
    box = prep.get("center_box")
    if box is not None and not (_is_number(box) and 0 < box <= 1):
        raise _bad(path, f'{where[:-1]}.center_box"', "a number in (0, 1]", box)
    for key in ("white_on_black", "grayscale"):
        if prep.get(key) is not None and not isinstance(prep[key], bool):
            raise _bad(path, f'{where[:-1]}.{key}"', "true or false", prep[key])
    if prep.get("resize") is not None and prep["resize"] not in ("stretch", "crop", "pad"):
        raise _bad(path, f'{where[:-1]}.resize"', '"stretch", "crop" or "pad"', prep["resize"])


def _check_history(path, history):
    if history is None:
        return
    if not isinstance(history, dict):
        raise _bad(path, '"history"', 'null or an object {"epoch": [...], "history": {...}}', history)
    epoch, values = history.get("epoch", []), history.get("history", {})
    if not (isinstance(epoch, list) and all(_is_int(e) and e >= 0 for e in epoch)):
        raise _bad(path, '"history.epoch"', "a list of epoch numbers (integers >= 0)", epoch)
    if not isinstance(values, dict):
        raise _bad(path, '"history.history"', "an object of lists of numbers", values)
    for key, v in values.items():
        if not (isinstance(v, list) and len(v) <= len(epoch) and all(_is_number(a, finite=False) for a in v)):
            raise _bad(path, f'"history.history.{key}"', f"a list of at most {len(epoch)} numbers "
                       f"(one per epoch)", v)


def _check_optimizer_meta(path, opt):
    where = '"optimizer"'
    if not isinstance(opt, dict):
        raise _bad(path, where, "null or an object", opt)
    kind = opt.get("type")
    if not isinstance(kind, str) or kind.lower() not in OPTIMIZERS:
        raise ModelFileError(f"{path!r}: unknown optimizer {kind!r} (known: {', '.join(OPTIMIZERS)})")
    for key in ("config", "steps", "initial_lr", "params", "buffers"):
        if key not in opt:
            raise ModelFileError(f"{path!r}: {where} lacks its {key!r} entry")
    if not isinstance(opt["config"], dict):
        raise _bad(path, '"optimizer.config"', "an object of hyper-parameters", opt["config"])
    if not _is_int(opt["steps"]) or opt["steps"] < 0:
        raise _bad(path, '"optimizer.steps"', "an integer >= 0", opt["steps"])
    if not (_is_number(opt["initial_lr"]) and opt["initial_lr"] > 0):
        raise _bad(path, '"optimizer.initial_lr"', "a positive number", opt["initial_lr"])
    params, buffers = opt["params"], opt["buffers"]
    if not (isinstance(params, list) and params and all(_is_int(i) and i >= 0 for i in params)
            and len(set(params)) == len(params)):
        raise _bad(path, '"optimizer.params"', "a non-empty list of distinct parameter positions", params)
    if not (isinstance(buffers, list) and len(buffers) == len(params) and
            all(isinstance(b, list) and all(isinstance(k, str) for k in b) for b in buffers)):
        raise _bad(path, '"optimizer.buffers"', f"a list of {len(params)} lists of buffer names", buffers)


def _check_arrays(path, model, arrays, dtype):
    """Parameters and buffers: present, real floating point (buffers: real numbers), finite."""
    params = {k for k, _ in model.named_parameters()}
    buffers = {k: b.dtype.kind for k, b in model.named_buffers()}
    for key, a in arrays.items():
        if not (key.startswith("param/") or key.startswith("optim/")):
            raise ModelFileError(f"{path!r}: unexpected entry {key!r} (expected param/... or optim/...)")
        name = key.split("/", 1)[1]
        want = "f" if key.startswith("optim/") or name in params else buffers.get(name, "f")
        if (a.dtype.kind != "f") if want == "f" else (a.dtype.kind not in "iu"):
            raise ModelFileError(f"{path!r}: {key!r} has dtype {a.dtype}; expected "
                                 f"{'real floating point' if want == 'f' else 'integer'} numbers")
        if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
            raise ModelFileError(f"{path!r}: {key!r} holds NaN or infinite values "
                                 f"(first at flat index {int(np.flatnonzero(~np.isfinite(a))[0])})")
        if key.endswith("running_var") and a.size and a.min() < 0:
            raise ModelFileError(f"{path!r}: {key!r} holds a negative variance ({float(a.min())})")


def build_module(spec, cls=None, where="the model"):
    """Rebuild a module from ``{"class": name, "config": {...}}`` (as saved); ``cls``, if given,
    is the class to build this (outermost) module as, instead of the registered one. A config
    its layer's constructor refuses raises ModelFileError naming the layer's position."""
    name, config = spec["class"], dict(spec.get("config", {}))
    cls = cls or LAYER_REGISTRY.get(name)
    if cls is None:
        raise ModelFileError(f"unknown layer type {name!r} in model file")
    if name == "Sequential":
        prefix = "layer " if where == "the model" else where + "."
        layers = [build_module(s, where=f"{prefix}{i}") for i, s in enumerate(config.pop("layers"))]
        try:
            return cls(*layers, input_shape=config.get("input_shape"))
        except ScratchCNNError as exc:
            raise ModelFileError(f"{where}: the layers do not fit together: {exc}") from None
    if name == "Residual":          # its branches are layer specs of their own, built first
        body = build_module(config["body"], where=f"{where}.body")
        shortcut = config.get("shortcut")
        shortcut = None if shortcut is None else build_module(shortcut, where=f"{where}.shortcut")
        try:
            return cls(body, shortcut)
        except ScratchCNNError as exc:
            raise ModelFileError(f"{where} (Residual): {exc}") from None
    try:
        return cls(**config)
    except ScratchCNNError as exc:
        raise ModelFileError(f"{where} ({name}): invalid config {json.dumps(config)[:200]}: {exc}") from None
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError, IndexError) as exc:
        raise ModelFileError(f"{where} ({name}): invalid config {json.dumps(config)[:200]}: "
                             f"{type(exc).__name__}: {exc}") from None


def load(path, with_optimizer=True, model_class=None):
    """Load a model saved by :func:`save`; it predicts exactly as the saved one did.
    The optimizer (if one was saved) is rebuilt as ``model.optimizer``. ``model_class``: the
    class of the outermost Sequential (default :class:`scratchcnn.nn.Sequential`).

    Everything in the file is checked before anything is built (see :func:`_read`), and a file
    that does not pass raises :class:`ModelFileError` naming the file, the entry and what was
    expected: the format version; the architecture (every layer's type and, through the layer's
    constructor, its config, with the layer's position); the memory the model would need; the
    dtype, shape and values of every parameter and buffer; the optimizer's state; the history;
    the class names and preprocessing."""
    meta, arrays = _read(path)
    path = os.fspath(path)
    arch = meta["architecture"]
    dtype = np.dtype(meta.get("dtype", "float32"))
    try:
        layers = arch["config"]["layers"] if arch["class"] == "Sequential" else [arch]
        shape = arch["config"].get("input_shape") if arch["class"] == "Sequential" else None
        # nested containers included: nn.sizes reads the configs inside Sequentials and Residuals
        check_model_size(layers, shape, itemsize=dtype.itemsize, what=f"the model in {path!r}")
        root = model_class if arch.get("class") == "Sequential" else None
        model = build_module(arch, root)
        if dtype != np.float32:
            model.to(dtype)
        _check_arrays(path, model, arrays, dtype)
        state = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
        model.load_state_dict(state)
    except ModelFileError as exc:
        msg = str(exc)
        raise ModelFileError(msg if msg.startswith(repr(path)) else f"{path!r}: {msg}") from None
    except ScratchCNNError as exc:
        raise ModelFileError(f"{path!r}: model file does not match its architecture: {exc}") from None
    model.metadata = meta.get("metadata") or {}
    _check_against_model(path, model)
    if meta.get("history"):
        model.history = History.from_dict(meta["history"])
    opt = meta.get("optimizer")
    if with_optimizer and opt:
        model.optimizer = _load_optimizer(path, model, opt, arrays)
    return model


def _check_against_model(path, model):
    """Class names and preprocessing agree with the model's input and output shapes."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        return
    meta = model.metadata
    prep = meta.get("preprocessing")
    if prep is not None and len(shape) == 3 and (prep["channels"], prep["height"], prep["width"]) != tuple(shape):
        raise ModelFileError(f"{path!r}: the preprocessing gives inputs of shape "
                             f"{(prep['channels'], prep['height'], prep['width'])}, but the model expects {tuple(shape)}")
    names = meta.get("class_names")
    if names is not None:
        out = tuple(model.output_shape(tuple(shape)))
        if out != (len(names),) and not (out == (1,) and len(names) == 2):     # one sigmoid output: 2 classes
            raise ModelFileError(f"{path!r}: {len(names)} class names for a model whose output has shape {out}")


def _load_optimizer(path, model, opt, arrays):
    cls = OPTIMIZERS[opt["type"].lower()]
    params = model.parameters()
    if max(opt["params"]) >= len(params):
        raise ModelFileError(f"{path!r}: the optimizer names parameter {max(opt['params'])}, but the model has "
                             f"{len(params)}")
    chosen = [params[i] for i in opt["params"]]
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in opt["config"].items()}
    try:       # built at its initial lr: the saved (current) lr may be 0, where a schedule annealed it
        optimizer = cls(chosen, **{**config, "lr": opt["initial_lr"]})
    except ScratchCNNError as exc:
        raise ModelFileError(f"{path!r}: the optimizer's config {json.dumps(opt['config'])[:200]} is refused: "
                             f"{exc}") from None
    except TypeError as exc:
        raise ModelFileError(f"{path!r}: the optimizer's config {json.dumps(opt['config'])[:200]} does not fit "
                             f"{cls.__name__}: {exc}") from None
    state = []
    for i, (names, p) in enumerate(zip(opt["buffers"], chosen)):
        s = {}
        for k in names:
            key = f"optim/{i}/{k}"
            if key not in arrays:
                raise ModelFileError(f"{path!r}: the optimizer's buffer {key!r} is missing")
            if arrays[key].shape != p.shape:
                raise ModelFileError(f"{path!r}: the optimizer's buffer {key!r} has shape {arrays[key].shape}, "
                                     f"its parameter {p.shape}")
            s[k] = arrays[key]
        state.append(s)
    extra = {k for k in arrays if k.startswith("optim/")} - {
        f"optim/{i}/{k}" for i, names in enumerate(opt["buffers"]) for k in names}
    if extra:
        raise ModelFileError(f"{path!r}: optimizer buffers {sorted(extra)[:5]} are not listed in its state")
    try:
        optimizer.load_state_dict({"type": cls.__name__, "config": config, "steps": opt["steps"],
                                   "initial_lr": opt["initial_lr"], "state": state})
    except ScratchCNNError as exc:
        raise ModelFileError(f"{path!r}: the optimizer's state is refused: {exc}") from None
    return optimizer
