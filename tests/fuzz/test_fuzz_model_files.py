"""Fuzz model files: their structure (the zip and the .npy headers), their JSON (format,
architecture, every layer's config, dtype, metadata, preprocessing, class names, history,
optimizer) and their arrays (dtypes, shapes, values), each mutated into something wrong.

``scratchcnn.load`` must raise ModelFileError naming the file; a sample of the files also goes
through ``scratchcnn summary FILE`` (one line, exit 2) and ``create_app(FILE)`` (what
``scratchcnn serve`` does at startup).
"""
import copy
import io
import json
import math
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import scratchcnn as sc
from scratchcnn import serialization
from .fuzzlib import api_error, cli_error

ENTRY = "model files"
META = serialization.META_KEY


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(meta dict, arrays dict, bytes) of a small model with every part a file can hold."""
    sc.manual_seed(0)
    model = sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.BatchNorm2D(2), sc.LeakyReLU(0.1),
                          sc.MaxPool2D(2), sc.Flatten(), sc.Dropout(0.2), sc.Dense(2 * 4 * 4, 3),
                          input_shape=(1, 8, 8))
    r = np.random.default_rng(0)
    model.fit(r.random((12, 1, 8, 8), dtype=np.float32), r.integers(0, 3, 12), epochs=2, batch_size=6,
              optimizer=sc.optim.Adam(model.parameters(), lr=1e-3), verbose=0)
    model.metadata = {"dataset": "digits", "class_names": ["a", "b", "c"], "model": "custom",
                      "preprocessing": {"channels": 1, "height": 8, "width": 8, "max_value": 16, "normalize": "scale",
                                        "mean": None, "std": None, "white_on_black": True, "center_box": 1.0}}
    path = tmp_path_factory.mktemp("model") / "model.npz"
    sc.save(model, path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop(META)))
    sc.load(path)                           # the unmutated file loads
    return meta, arrays, path.read_bytes()


def write(path, meta, arrays, meta_text=None):
    out = dict(arrays)
    out[META] = np.array(meta_text if meta_text is not None else json.dumps(meta))
    np.savez(path, **out)
    return path


def _target(tmp_path_factory):
    return tmp_path_factory.mktemp("mutant") / "model.npz"


# ---- the JSON: a value that a path may not hold ---------------------------------------------------
NOT_INT = st.sampled_from(["3", 1.5, None, [], {}, True, "x", float("nan")])
NOT_POS_INT = st.one_of(NOT_INT, st.integers(-10**12, 0))
NOT_FLOAT = st.sampled_from(["0.1", None, [], {}, True, "x", float("nan"), float("inf"), -float("inf")])
NOT_BOOL = st.sampled_from(["yes", 1, 0, None, [], "true", 2.5])
NOT_DICT = st.sampled_from([None, [], [1, 2], "x", 5, 1.5, True])
NOT_LIST = st.sampled_from([None, {}, "x", 5, 1.5, True])
NOT_STR = st.sampled_from([None, 5, 1.5, [], {}, True])


def _layer_targets(meta):
    """(path, bad-value strategy, kind) for the config entries of every layer in the architecture."""
    out = []
    for i, spec in enumerate(meta["architecture"]["config"]["layers"]):
        name, base = spec["class"], ("architecture", "config", "layers", i)
        out.append((base + ("class",), st.one_of(NOT_STR, st.sampled_from(["Conv3D", "", "_Pool2D", "Module",
                                                                           "os.system", name.lower()])),
                    "layer type"))
        out.append((base + ("config",), NOT_DICT, "layer config"))
        out.append((base + ("config", "no_such_argument"), st.integers(), "layer config key"))
        if name == "Conv2D":
            for key in ("in_channels", "out_channels"):
                actual = spec["config"][key]
                out.append((base + ("config", key), st.one_of(NOT_POS_INT, st.integers(1, 10**6).filter(
                    lambda v, a=actual: v != a)), "layer config value"))
            for key in ("kernel_size", "stride"):
                out.append((base + ("config", key), st.one_of(NOT_POS_INT, st.sampled_from([[3], [3, 3, 3], ["3", 3],
                                                                                           [0, 3], [-1, -1]])),
                            "layer config value"))
            out.append((base + ("config", "padding"), st.sampled_from(["full", -1, [-1, 0], [1], "x", None, 1.5, {}]),
                        "layer config value"))
            out.append((base + ("config", "bias"), st.sampled_from(["no", None, 2, [], "false"]), "layer config value"))
            out.append((base + ("config", "init"), st.sampled_from(["nope", 5, None, [], ""]), "layer config value"))
        elif name == "BatchNorm2D":
            out.append((base + ("config", "num_features"), st.one_of(NOT_POS_INT, st.integers(3, 100)),
                        "layer config value"))
            out.append((base + ("config", "eps"), st.one_of(NOT_FLOAT, st.floats(-1e6, 0)), "layer config value"))
            out.append((base + ("config", "momentum"), st.one_of(NOT_FLOAT, st.floats(-10, -1e-9),
                                                                 st.floats(1.0001, 100)), "layer config value"))
            out.append((base + ("config", "affine"), NOT_BOOL, "layer config value"))
        elif name == "LeakyReLU":
            out.append((base + ("config", "negative_slope"), NOT_FLOAT, "layer config value"))
        elif name == "MaxPool2D":
            out.append((base + ("config", "kernel_size"), st.one_of(NOT_POS_INT, st.sampled_from([[2], [9, 9],
                                                                                                  [2, 2, 2]])),
                        "layer config value"))
            out.append((base + ("config", "stride"), st.one_of(NOT_POS_INT.filter(lambda v: v is not None),
                                                               st.sampled_from([[0, 1], [2]])),
                        "layer config value"))
            out.append((base + ("config", "padding"), st.sampled_from([-1, [2, 2], [5, 5], "x", [0], None]),
                        "layer config value"))
        elif name == "Dropout":
            out.append((base + ("config", "p"), st.one_of(NOT_FLOAT, st.floats(-10, -1e-9), st.floats(1, 10)),
                        "layer config value"))
        elif name == "Dense":
            for key in ("in_features", "out_features"):
                out.append((base + ("config", key), st.one_of(NOT_POS_INT, st.integers(4, 10**5).filter(
                    lambda v: v not in (32, 3))), "layer config value"))
    return out


def _meta_targets(meta):
    arch = ("architecture",)
    opt = ("optimizer",)
    prep = ("metadata", "preprocessing")
    return _layer_targets(meta) + [
        (("format",), st.one_of(NOT_STR, st.sampled_from(["", "scratchcnn", "SCRATCHCNN-MODEL", "pytorch"])), "format"),
        (("version",), st.one_of(NOT_INT, st.integers(-5, 0), st.integers(2, 10**9)), "format version"),
        (arch, NOT_DICT, "architecture"),
        (arch + ("class",), st.one_of(NOT_STR, st.sampled_from(["Dense", "Nope", ""])), "architecture"),
        (arch + ("config",), NOT_DICT, "architecture"),
        (arch + ("config", "layers"), st.one_of(NOT_LIST, st.just([1, 2]), st.just([{}]), st.just([None])), "architecture"),
        (arch + ("config", "input_shape"), st.one_of(st.sampled_from([[0, 8, 8], [-1, 8, 8], [1, 8], [1, 8, 8, 8, 8],
                                                                     ["1", 8, 8], [1.5, 8, 8], [1, 9, 8], "1,8,8",
                                                                     {}, 5, [1, 10**9, 8]]),
                                                     st.lists(st.integers(1, 20), min_size=3, max_size=3).filter(
                                                         lambda s: s[0] != 1 or s[1:] not in ([8, 8], [9, 9]))),
         "input shape"),
        (arch + ("config", "extra"), st.integers(), "architecture"),
        (("dtype",), st.sampled_from(["int32", "complex64", "complex128", "float128", "object", "bool", "", 5, [],
                                      "uint8", "<U3", "float"]), "dtype"),
        (("metadata",), st.sampled_from([[], "x", 5, [1, 2], True]), "metadata"),
        (("metadata", "class_names"), st.one_of(NOT_LIST.filter(lambda v: v is not None), st.sampled_from(
            [[], [1, 2, 3], ["a", "b"], ["a", "b", "c", "d"], ["a", None, "c"], [["a"], "b", "c"]])), "class names"),
        (("metadata", "dataset"), st.sampled_from([5, [], {}, 1.5, True]), "metadata"),
        (("metadata", "run_dir"), st.sampled_from([5, [], {}, True]), "metadata"),
        (prep, st.sampled_from([[], "x", 5, True]), "preprocessing"),
        (prep + ("channels",), st.one_of(NOT_INT.filter(lambda v: v is not None), st.sampled_from([0, 2, 3, 4, -1])),
         "preprocessing"),
        (prep + ("height",), st.one_of(NOT_INT.filter(lambda v: v is not None), st.sampled_from([0, -8, 9, 28, 10**9])),
         "preprocessing"),
        (prep + ("width",), st.one_of(NOT_INT.filter(lambda v: v is not None), st.sampled_from([0, 7, 16])),
         "preprocessing"),
        (prep + ("max_value",), st.sampled_from([0, -1, "x", [], float("nan"), float("inf")]), "preprocessing"),
        (prep + ("normalize",), st.sampled_from(["nope", 5, [], "Scale"]), "preprocessing"),
        (prep + ("mean",), st.sampled_from([[0.1, 0.2], ["x"], [float("nan")], 5, "0.1", {}]), "preprocessing"),
        (prep + ("std",), st.sampled_from([[0.0], [-1.0], [0.1, 0.2], ["x"], [float("inf")], 5]), "preprocessing"),
        (prep + ("white_on_black",), NOT_BOOL.filter(lambda v: v is not None), "preprocessing"),
        (prep + ("center_box",), st.sampled_from([0, -0.5, 1.5, "x", [], float("nan")]), "preprocessing"),
        (prep + ("resize",), st.sampled_from(["nope", 5, [], "Crop"]), "preprocessing"),
        (("history",), st.sampled_from([5, "x", [1, 2], 1.5, True]), "history"),
        (("history", "epoch"), st.one_of(st.sampled_from([5, "x", {}, [1.5], ["0"], [-1], [True]]),
                                         st.lists(st.integers(-5, -1), min_size=1, max_size=3)), "history"),
        (("history", "history"), st.sampled_from([5, "x", [], [1, 2]]), "history"),
        (("history", "history", "loss"), st.one_of(st.sampled_from([5, "x", {}, ["0.5", 0.4], [[0.5], 0.4],
                                                                    [None, 0.3], [True, 0.1]]),
                                                   st.lists(st.floats(0, 1), min_size=3, max_size=6)), "history"),
        (opt, st.sampled_from([5, "x", [], True]), "optimizer"),
        (opt + ("type",), st.one_of(NOT_STR, st.sampled_from(["RMSprop", "", "Adagrad"])), "optimizer"),
        (opt + ("config",), NOT_DICT, "optimizer"),
        (opt + ("config", "lr"), st.one_of(NOT_FLOAT, st.floats(-10, 0)), "optimizer"),
        (opt + ("config", "betas"), st.sampled_from([[0.9], [2, 0.999], [0.9, -0.1], "x", [0.9, float("nan")],
                                                     [0.9, 0.999, 0.5], 5]), "optimizer"),
        (opt + ("config", "eps"), st.one_of(NOT_FLOAT, st.floats(-10, 0)), "optimizer"),
        (opt + ("config", "weight_decay"), st.one_of(NOT_FLOAT, st.floats(-10, -1e-9)), "optimizer"),
        (opt + ("config", "momentum"), st.floats(0, 0.5), "optimizer"),         # not an Adam setting
        (opt + ("steps",), st.one_of(NOT_INT, st.integers(-100, -1)), "optimizer"),
        (opt + ("initial_lr",), st.one_of(NOT_FLOAT, st.floats(-1, 0)), "optimizer"),
        (opt + ("params",), st.one_of(NOT_LIST, st.sampled_from([[], [0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 99],
                                                                 [-1, 1, 2, 3, 4, 5], ["0", 1, 2, 3, 4, 5],
                                                                 [0, 1]])), "optimizer"),
        (opt + ("buffers",), st.one_of(NOT_LIST, st.sampled_from([[], [["exp_avg"]], [[1]] * 6, ["exp_avg"] * 6,
                                                                  [["nope"]] * 6])), "optimizer"),
    ]


def _set(meta, path, value):
    obj = meta
    for key in path[:-1]:
        obj = obj[key]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()
REQUIRED = [("format",), ("version",), ("architecture",), ("architecture", "class"), ("architecture", "config", "layers"),
            ("optimizer", "config"), ("optimizer", "steps"), ("optimizer", "params"), ("optimizer", "buffers"),
            ("optimizer", "initial_lr"), ("optimizer", "type"),
            ("architecture", "config", "layers", 0, "config", "in_channels"),
            ("architecture", "config", "layers", 6, "config", "out_features"),
            ("metadata", "preprocessing", "channels"), ("metadata", "preprocessing", "height")]


@settings(max_examples=450)
@given(data=st.data())
def test_metadata_and_architecture_mutations(data, saved, tmp_path_factory):
    meta, arrays, _ = saved
    targets = _meta_targets(meta)
    mutant = copy.deepcopy(meta)
    if data.draw(st.integers(0, 9)) == 0:
        path = data.draw(st.sampled_from(REQUIRED))
        kind = "missing entry"
        _set(mutant, path, _DELETE)
    else:
        path, values, kind = data.draw(st.sampled_from(targets))
        value = data.draw(values)
        note(f"{'.'.join(map(str, path))} = {value!r}")
        try:
            _set(mutant, path, value)
        except (TypeError, KeyError, IndexError):
            return
    target = write(_target(tmp_path_factory), mutant, arrays)
    api_error(ENTRY, kind, sc.load, target, error=sc.ModelFileError, match=r"model\.npz")


@settings(max_examples=60)
@given(depth=st.integers(65, 20000), where=st.sampled_from(["metadata", "history", "architecture", "top"]),
       kind=st.sampled_from(["[", "{"]))
def test_deeply_nested_json(depth, where, kind, saved, tmp_path_factory):
    meta, arrays, _ = saved
    nested = ("[" * depth + "]" * depth) if kind == "[" else ('{"a":' * depth + "1" + "}" * depth)
    text = json.dumps(meta)
    if where == "metadata":
        text = text.replace('"metadata": {', '"metadata": {"deep": ' + nested + ", ", 1)
    elif where == "history":
        text = text.replace('"history": {', '"history": {"deep": ' + nested + ", ", 1)
    elif where == "architecture":
        text = text.replace('"architecture": {', '"architecture": {"deep": ' + nested + ", ", 1)
    else:
        text = nested
    target = write(_target(tmp_path_factory), None, arrays, meta_text=text)
    api_error(ENTRY, "deeply nested JSON", sc.load, target, error=sc.ModelFileError, match=r"deeper|nest|readable")


@settings(max_examples=40)
@given(text=st.one_of(st.text(max_size=40), st.sampled_from(["", "null", "[]", "5", '"x"', "{", "NaN", "[1, 2]",
                                                            '{"format": "scratchcnn-model"}', "\x00"])))
def test_json_that_is_not_a_model(text, saved, tmp_path_factory):
    _, arrays, _ = saved
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("format") == "scratchcnn-model" and "architecture" in obj:
        text = "{"
    target = write(_target(tmp_path_factory), None, arrays, meta_text=text)
    api_error(ENTRY, "JSON not a model", sc.load, target, error=sc.ModelFileError)


def test_json_too_large_is_refused_before_it_is_parsed(saved, tmp_path_factory, monkeypatch):
    meta, arrays, _ = saved
    monkeypatch.setattr(serialization, "MAX_META_BYTES", 40_000)
    big = copy.deepcopy(meta)
    big["metadata"]["notes"] = "x" * 20_000
    target = write(_target(tmp_path_factory), big, arrays)
    api_error(ENTRY, "JSON too large", sc.load, target, error=sc.ModelFileError, match=r"at most")


# ---- the arrays -----------------------------------------------------------------------------------
ARRAY_KINDS = ["complex", "integer", "bool", "object", "string", "wrong shape", "scalar", "NaN", "inf", "missing",
               "extra", "negative variance", "not param or optim", "optimizer buffer"]


@settings(max_examples=300)
@given(data=st.data())
def test_array_mutations(data, saved, tmp_path_factory):
    meta, arrays, _ = saved
    kind = data.draw(st.sampled_from(ARRAY_KINDS))
    params = sorted(k for k in arrays if k.startswith("param/") and "num_batches" not in k)
    mutant = dict(arrays)
    key = data.draw(st.sampled_from(params))
    a = arrays[key]
    if kind == "complex":
        mutant[key] = (a + 1j * data.draw(st.floats(0, 1))).astype(data.draw(st.sampled_from([np.complex64,
                                                                                              np.complex128])))
    elif kind == "integer":
        mutant[key] = a.astype(data.draw(st.sampled_from([np.int8, np.int32, np.int64, np.uint16])))
    elif kind == "bool":
        mutant[key] = a > 0
    elif kind == "object":
        mutant[key] = np.array([object()] * max(a.size, 1), dtype=object)
    elif kind == "string":
        mutant[key] = np.array(["x"] * a.size).reshape(a.shape)
    elif kind == "wrong shape":
        how = data.draw(st.sampled_from(["grow", "shrink", "add axis", "flat", "transpose"]))
        if how == "grow":
            mutant[key] = np.concatenate([a.reshape(-1), np.zeros(data.draw(st.integers(1, 5)), a.dtype)])
        elif how == "shrink" and a.size > 1:
            mutant[key] = a.reshape(-1)[:-1]
        elif how == "add axis":
            mutant[key] = a[None]
        elif how == "flat" and a.ndim > 1:
            mutant[key] = a.reshape(-1)
        else:
            mutant[key] = np.zeros(a.shape + (2,), a.dtype)
    elif kind == "scalar":
        mutant[key] = np.array(1.0, a.dtype)
    elif kind in ("NaN", "inf"):
        b = a.copy()
        b.reshape(-1)[data.draw(st.integers(0, a.size - 1))] = np.nan if kind == "NaN" else \
            data.draw(st.sampled_from([np.inf, -np.inf]))
        mutant[key] = b
    elif kind == "missing":
        del mutant[key]
    elif kind == "extra":
        mutant["param/" + data.draw(st.sampled_from(["9.weight", "0.extra", "x", "0.weight.1"]))] = np.zeros(3, np.float32)
    elif kind == "negative variance":
        var = next(k for k in arrays if k.endswith("running_var"))
        b = arrays[var].copy()
        b[0] = -data.draw(st.floats(1e-6, 10))
        mutant[var] = b
    elif kind == "not param or optim":
        mutant[data.draw(st.sampled_from(["junk", "params/0.weight", "optimizer"]))] = np.zeros(2, np.float32)
    else:
        okeys = sorted(k for k in arrays if k.startswith("optim/"))
        okey = data.draw(st.sampled_from(okeys))
        how = data.draw(st.sampled_from(["shape", "complex", "NaN", "missing", "extra", "int"]))
        if how == "shape":
            mutant[okey] = np.zeros(arrays[okey].size + 1, np.float32)
        elif how == "complex":
            mutant[okey] = arrays[okey].astype(np.complex64)
        elif how == "NaN":
            mutant[okey] = np.full_like(arrays[okey], np.nan)
        elif how == "missing":
            del mutant[okey]
        elif how == "extra":
            mutant["optim/0/nope"] = np.zeros_like(arrays[okey])
        else:
            mutant[okey] = arrays[okey].astype(np.int32)
        kind = f"optimizer buffer ({how})"
    target = write(_target(tmp_path_factory), meta, mutant)
    api_error(ENTRY, f"array: {kind}", sc.load, target, error=sc.ModelFileError, match=r"model\.npz")


# ---- the container ---------------------------------------------------------------------------------
@settings(max_examples=120)
@given(data=st.data())
def test_truncated_files(data, saved, tmp_path_factory):
    _, _, raw = saved
    n = data.draw(st.integers(0, len(raw) - 1))
    target = _target(tmp_path_factory)
    target.write_bytes(raw[:n])
    api_error(ENTRY, "truncated file", sc.load, target, error=sc.ModelFileError, match=r"model\.npz")


@settings(max_examples=80)
@given(data=st.data())
def test_damaged_array_bytes(data, saved, tmp_path_factory):
    """A byte changed inside an array's data: the zip's CRC finds it."""
    _, _, raw = saved
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        infos = [i for i in zf.infolist() if i.file_size > 200]
        info = data.draw(st.sampled_from(infos))
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 128
        end = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size
    pos = data.draw(st.integers(start, end - 1))
    damaged = bytearray(raw)
    damaged[pos] ^= data.draw(st.integers(1, 255))
    target = _target(tmp_path_factory)
    target.write_bytes(bytes(damaged))
    api_error(ENTRY, "damaged bytes", sc.load, target, error=sc.ModelFileError, match=r"model\.npz")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _npy(shape, descr="<f4", body=b"", version=(1, 0)):
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue() + body


CONTAINER_KINDS = ["random bytes", "empty file", "text", "a directory", "zip without meta", "zip with a non-npy member",
                   "duplicate member", "npy declaring a huge array", "npy declaring more than it holds", "object array",
                   "meta not a string", "meta a 2-D array", "a plain .npy file", "npy version 3",
                   "missing file", "npy header garbage"]


@settings(max_examples=150)
@given(kind=st.sampled_from(CONTAINER_KINDS), seed=st.integers(0, 2**16), data=st.data())
def test_container_damage(kind, seed, data, saved, tmp_path_factory):
    meta, arrays, raw = saved
    rng = np.random.default_rng(seed)
    target = _target(tmp_path_factory)
    text = json.dumps(meta)
    meta_npy = io.BytesIO()
    np.lib.format.write_array(meta_npy, np.array(text))
    meta_npy = meta_npy.getvalue()
    if kind == "random bytes":
        target.write_bytes(rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes())
    elif kind == "empty file":
        target.write_bytes(b"")
    elif kind == "text":
        target.write_text("model " * int(rng.integers(1, 100)))
    elif kind == "a directory":
        target.mkdir()
    elif kind == "zip without meta":
        np.savez(target, **arrays)
    elif kind == "zip with a non-npy member":
        _zip(target, [(META + ".npy", meta_npy), (data.draw(st.sampled_from(["evil.py", "../x", "a.txt", "p.pkl"])),
                                                  b"x")])
    elif kind == "duplicate member":
        with pytest.warns(UserWarning):
            _zip(target, [(META + ".npy", meta_npy), (META + ".npy", meta_npy)])
    elif kind == "npy declaring a huge array":
        shape = (data.draw(st.integers(10**9, 10**15)),) * data.draw(st.integers(1, 3))
        _zip(target, [(META + ".npy", meta_npy), ("param/0.weight.npy", _npy(shape, body=b"\0" * 64))])
    elif kind == "npy declaring more than it holds":
        _zip(target, [(META + ".npy", meta_npy), ("param/0.weight.npy", _npy((2, 1, 3, 3), body=b"\0" * int(
            rng.integers(0, 71))))])
    elif kind == "object array":
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        _zip(target, [(META + ".npy", meta_npy), ("param/0.weight.npy", buf.getvalue())])
    elif kind == "meta not a string":
        out = dict(arrays)
        out[META] = np.array(data.draw(st.sampled_from([5, 1.5, True])))
        np.savez(target, **out)
    elif kind == "meta a 2-D array":
        out = dict(arrays)
        out[META] = np.array([[text, text]])
        np.savez(target, **out)
    elif kind == "a plain .npy file":
        np.save(target, np.zeros(3))
        os.replace(str(target) + ".npy" if os.path.exists(str(target) + ".npy") else target, target)
    elif kind == "npy version 3":
        body = _npy((3,), body=b"\0" * 12)
        body = body[:6] + b"\x03\x00" + body[8:]
        _zip(target, [(META + ".npy", meta_npy), ("param/x.npy", body)])
    elif kind == "npy header garbage":
        _zip(target, [(META + ".npy", meta_npy), ("param/x.npy", b"\x93NUMPY\x01\x00" +
                                                  rng.integers(0, 256, 40, dtype=np.uint8).tobytes())])
    # "missing file": nothing written
    api_error(ENTRY, f"container: {kind}", sc.load, target, error=sc.ModelFileError, match=r"model\.npz")


def test_an_array_too_large_for_memory_is_refused_before_reading(saved, tmp_path_factory, monkeypatch):
    meta, arrays, _ = saved
    big = dict(arrays)
    big["param/6.weight"] = np.zeros((3, 32 * 1024), np.float32)        # 384 KiB
    target = write(_target(tmp_path_factory), meta, big)
    monkeypatch.setenv("SCRATCHCNN_MEMORY_LIMIT", "256K")
    exc = api_error(ENTRY, "array too large for memory", sc.load, target, error=sc.ModelFileError,
                    match=r"would need .*KiB.*refused before reading")
    assert "6.weight" in str(exc)


def test_a_layer_too_large_for_memory_is_refused_before_it_is_built(saved, tmp_path_factory):
    meta, arrays, _ = saved
    big = copy.deepcopy(meta)
    big["architecture"]["config"]["layers"][6]["config"]["out_features"] = 10**9
    target = write(_target(tmp_path_factory), big, arrays)
    api_error(ENTRY, "layer too large for memory", sc.load, target, error=sc.ModelFileError, match=r"GiB|TiB")


# ---- the same files through the command line and the web server's startup -------------------------
@settings(max_examples=40)
@given(data=st.data())
def test_mutated_files_through_summary_and_serve(data, saved, tmp_path_factory):
    from scratchcnn.app.serve import create_app
    meta, arrays, raw = saved
    target = _target(tmp_path_factory)
    how = data.draw(st.sampled_from(["truncated", "json", "array"]))
    if how == "truncated":
        target.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif how == "json":
        path, values, _ = data.draw(st.sampled_from(_meta_targets(meta)))
        mutant = copy.deepcopy(meta)
        try:
            _set(mutant, path, data.draw(values))
        except (TypeError, KeyError, IndexError):
            mutant["version"] = 99
        write(target, mutant, arrays)
    else:
        mutant = dict(arrays)
        mutant["param/0.weight"] = arrays["param/0.weight"].astype(np.complex64)
        write(target, meta, mutant)
    where = data.draw(st.sampled_from(["summary", "serve startup", "predict", "export"]))
    if where == "summary":
        cli_error("cli", "summary model file", ["summary", str(target)], match=r"model\.npz")
    elif where == "predict":
        cli_error("cli", "predict model file", ["predict", str(target), str(target)], match=r"model\.npz")
    elif where == "export":
        cli_error("cli", "export model file", ["export", str(target), "--format", "onnx"], match=r"model\.npz")
    else:
        api_error("web", "startup on a bad model file", create_app, target, error=sc.ModelFileError,
                  match=r"model\.npz")


def test_float_metadata_values_that_are_fine_still_load(saved, tmp_path_factory):
    """The validation refuses what is wrong, not what is unusual: free-form metadata, NaN in a
    history, a model without metadata or optimizer, a float64 model."""
    meta, arrays, _ = saved
    fine = copy.deepcopy(meta)
    fine["metadata"]["anything"] = {"nested": [1, "two", None, {"three": 3.0}]}
    fine["history"]["history"]["val_loss"] = [math.nan, 0.5]
    target = write(_target(tmp_path_factory), fine, arrays)
    model = sc.load(target)
    assert model.metadata["anything"]["nested"][1] == "two"
    bare = copy.deepcopy(meta)
    bare["metadata"], bare["optimizer"], bare["history"] = {}, None, None
    assert sc.load(write(_target(tmp_path_factory), bare, {k: v for k, v in arrays.items()
                                                            if k.startswith("param/")})).optimizer is None
