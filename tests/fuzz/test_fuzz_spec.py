"""Fuzz model spec strings (and preset names with impossible input shapes).

Every generated spec is made bad on purpose, in one of these ways (the kind each case counts
under): an unknown token, a size of zero, a number too long to be a size, a token too long, a
layer that does not fit its input (dense before flatten, a convolution after it, a window
larger than the image), a last layer that is not ``dense10``, a model too large for memory
(parameters or activations, under the suite's 1 GiB limit), characters a spec cannot hold, an
empty spec. ``build_model(spec, (1, 28, 28), 10)`` must raise a ScratchCNNError naming it.
"""
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchcnn as sc
from scratchcnn.app.experiment import build_model
from .fuzzlib import api_error, cli_error

ENTRY = "spec strings"
SHAPE, CLASSES = (1, 28, 28), 10

# tokens that are fine anywhere their input allows
IMAGE_TOKENS = st.sampled_from(["relu", "leakyrelu", "sigmoid", "tanh", "bn", "dropout0.3", "conv4x3same",
                                "conv2x3", "conv4x1", "maxpool2", "avgpool2", "conv4x3s2p1"])
FLAT_TOKENS = st.sampled_from(["relu", "dense16", "bn", "dropout0.5", "tanh", "sigmoid"])


@st.composite
def valid_spec(draw):
    """A spec that builds: image tokens, flatten (or gap), flat tokens, dense10."""
    head = draw(st.lists(IMAGE_TOKENS, max_size=3))
    mid = draw(st.sampled_from(["flatten", "gap"]))
    tail = draw(st.lists(FLAT_TOKENS, max_size=2))
    return ["conv4x3"] + head + [mid] + tail + ["dense10"]


def _digits(draw, low, high):
    return str(draw(st.integers(low, high)))


@st.composite
def bad_spec(draw):
    tokens = draw(valid_spec())
    kind = draw(st.sampled_from(["unknown token", "zero size", "number too long", "token too long",
                                 "does not fit", "wrong number of outputs", "too large for memory",
                                 "odd characters", "empty"]))
    i = draw(st.integers(0, len(tokens) - 1))
    if kind == "unknown token":
        word = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz.0123456789", min_size=1, max_size=12))
        if word in {"relu", "leakyrelu", "sigmoid", "tanh", "softmax", "flatten", "gap", "bn"} or \
                __import__("scratchcnn.app.spec", fromlist=["_layer"])._layer(word, (4, 8, 8)) is not None:
            word += "zz"
        tokens.insert(i, word)
    elif kind == "zero size":
        tokens.insert(1, draw(st.sampled_from(["conv0x3", "conv4x0", "maxpool0", "avgpool0", "conv4x3s0",
                                               "maxpool2s0"])))
    elif kind == "number too long":
        tokens.insert(1, "conv" + "9" * draw(st.integers(10, 30)) + "x3")
    elif kind == "token too long":
        tokens.insert(i, "relu" * draw(st.integers(11, 40)))
    elif kind == "does not fit":
        where = draw(st.sampled_from(["dense first", "conv after flatten", "window", "bn after gap"]))
        if where == "dense first":
            tokens.insert(0, "dense" + _digits(draw, 1, 64))
        elif where == "conv after flatten":
            tokens.insert(tokens.index("flatten") + 1 if "flatten" in tokens else tokens.index("gap") + 1,
                          "conv4x3")
        elif where == "window":
            tokens.insert(1, draw(st.sampled_from(["maxpool", "avgpool", "conv4x"])) + _digits(draw, 40, 999))
        else:
            tokens[tokens.index("gap") if "gap" in tokens else tokens.index("flatten")] = "gap"
            tokens.insert(tokens.index("gap") + 1, "maxpool2")
    elif kind == "wrong number of outputs":
        n = draw(st.integers(1, 4096).filter(lambda n: n != CLASSES))
        tokens[-1] = f"dense{n}"
    elif kind == "too large for memory":
        which = draw(st.sampled_from(["channels", "kernel", "dense"]))
        if which == "channels":
            tokens[0] = f"conv{draw(st.integers(10**6, 10**9 - 1))}x3"
        elif which == "kernel":
            tokens[0] = f"conv8x{draw(st.integers(10**5, 10**9 - 1))}"
        else:
            tokens.insert(len(tokens) - 1, f"dense{draw(st.integers(10**8, 10**9 - 1))}")
    elif kind == "odd characters":
        odd = draw(st.sampled_from(["!", " ", "\n", "\t", "é", "_", "/", "*", "\x00", ";"]))
        tokens[i] = tokens[i][:1] + odd + tokens[i][1:]
    else:
        return kind, draw(st.sampled_from(["", " ", "-", "--", "---", "\n"]))
    return kind, "-".join(tokens)


@settings(max_examples=500)
@given(case=bad_spec())
def test_bad_spec_strings(case):
    kind, spec = case
    match = {"too large for memory": r"GiB|TiB|PiB|memory", "zero size": r"must|>= 1|positive|zero",
             "odd characters": r"letters, digits", "wrong number of outputs": r"dense10|classes"}.get(kind)
    api_error(ENTRY, kind, build_model, spec, SHAPE, CLASSES, match=match)


@settings(max_examples=60)
@given(text=st.one_of(st.text(max_size=30), st.binary(max_size=10).map(lambda b: b.decode("latin1"))))
def test_arbitrary_text_is_never_a_traceback(text):
    """Any text at all: a model, or a clear error; never a raw exception."""
    try:
        build_model(text, SHAPE, CLASSES)
    except sc.ScratchCNNError as exc:
        assert str(exc)
        kind = "arbitrary text"
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"raw {type(exc).__name__} for {text!r}: {exc}") from None
    else:
        kind = None
    if kind:
        api_error(ENTRY, kind, build_model, text, SHAPE, CLASSES)


@settings(max_examples=40)
@given(spec=st.sampled_from([None, 3, 3.5, b"conv8x3", ["conv8x3"], {"a": 1}]),
       shape=st.sampled_from([(1, 28, 28), None, "1,28,28", (1, "a", 3)]))
def test_specs_that_are_not_strings(spec, shape):
    api_error(ENTRY, "not a string", build_model, spec, shape if shape is not None else SHAPE, CLASSES)


@settings(max_examples=40)
@given(preset=st.sampled_from(["small", "seed-a-simple", "seed-a-complex", "seed-b", "strong", "strong-cifar",
                               "seed-d", "strong-light"]),
       shape=st.sampled_from([(1, 60000, 60000), (1, 2, 2), (1,), (3, 28), (10**7, 28, 28), (1, 1, 1),
                              (1, 30000, 30000)]),
       classes=st.sampled_from([10, 0, -1, 10**9, 2.5, True]))
def test_presets_for_impossible_inputs(preset, shape, classes):
    if classes == 10 and shape in ((1, 2, 2),) and preset in ("seed-b",):
        shape = (1, 1, 1)
    match = r"GiB|TiB|memory" if shape[0] * (shape[1] if len(shape) > 1 else 1) > 10**8 and classes == 10 else None
    api_error(ENTRY, "preset, impossible input", build_model, preset, shape, classes, match=match)


@settings(max_examples=20)
@given(case=bad_spec())
def test_bad_specs_on_the_command_line(case):
    kind, spec = case
    if "\x00" in spec:
        spec = spec.replace("\x00", "!")
    cli_error("cli", f"summary spec ({kind})", ["summary", spec if spec.strip() else "-"])
