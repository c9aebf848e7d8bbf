"""Fuzz the command line: generated bad arguments for every subcommand and option.

Each case runs ``scratchcnn.app.cli.main(argv)`` in-process (stdout and stderr captured) and
expects exit status 2 and one line ``scratchcnn <command>: error: ...``; a few run through a
real subprocess to show that what a user sees is that one line and nothing else.
"""
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchcnn as sc
from .fuzzlib import check_cli_output, cli_error

ENTRY = "cli"
JUNK = ["", " ", "x", "1.5", "nan", "NaN", "inf", "-inf", "1e3", "0x10", "--", "١٢", "None", "null", "[]",
        "9" * 5000, "-" * 3, "\t", "é", "1,2", "1_000_000_000_000_000_000"]


def _is_int_in(text, low, high=None):
    try:
        v = int(text)
    except (TypeError, ValueError):
        return False
    return v >= low and (high is None or v <= high)


def _is_float_in(text, low, high=None, low_open=False, high_open=False):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return False
    if not np.isfinite(v) or (v <= low if low_open else v < low):
        return False
    return high is None or (v < high if high_open else v <= high)


def bad_int(low, high=None):
    parts = [st.integers(max_value=low - 1).map(str), st.sampled_from(JUNK), st.text(max_size=6),
             st.floats(allow_nan=True, allow_infinity=True).map(repr)]
    if high is not None:
        parts.append(st.integers(min_value=high + 1).map(str))
    return st.one_of(parts).filter(lambda t: not _is_int_in(t, low, high))


def bad_float(low, high=None, low_open=False, high_open=False):
    parts = [st.floats(max_value=low, exclude_max=not low_open).map(repr), st.sampled_from(JUNK),
             st.text(max_size=6), st.sampled_from(["nan", "inf", "-inf", "1e999", "-1e-999"])]
    if high is not None:
        parts.append(st.floats(min_value=high, exclude_min=not high_open).map(repr))
    return st.one_of(parts).filter(lambda t: not _is_float_in(t, low, high, low_open, high_open))


def bad_choice(choices):
    return st.one_of(st.text(max_size=8), st.sampled_from(JUNK + [c.upper() for c in choices] + [c + "x" for c in choices])
                     ).filter(lambda t: t not in choices)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny trained-looking model for the commands that need one."""
    sc.manual_seed(0)
    model = sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(),
                          sc.Dense(2 * 4 * 4, 10), input_shape=(1, 8, 8))
    model.metadata = {"dataset": "digits", "class_names": [str(i) for i in range(10)],
                      "preprocessing": {"channels": 1, "height": 8, "width": 8, "max_value": 16,
                                        "normalize": "scale", "mean": None, "std": None, "white_on_black": True}}
    path = tmp_path_factory.mktemp("cli-model") / "model.npz"
    sc.save(model, path)
    return path


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from PIL import Image
    path = tmp_path_factory.mktemp("cli-image") / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-runs")


# ---- train: every numeric option and every option with a fixed vocabulary --------------------------
TRAIN_NUMBERS = {
    "--epochs": bad_int(1), "--batch-size": bad_int(1), "--per-class": bad_int(1), "--test-per-class": bad_int(1),
    "--seed": bad_int(0), "--lr": bad_float(0, low_open=True), "--momentum": bad_float(0, 1, high_open=True),
    "--weight-decay": bad_float(0), "--val-split": bad_float(0, 1, high_open=True), "--workers": bad_int(1),
    "--time-limit": bad_float(0, low_open=True),
}
TRAIN_CHOICES = {"--optimizer": ["sgd", "adam", "adamw"], "--normalize": ["scale", "standardize", "none"]}


@settings(max_examples=220)
@given(data=st.data())
def test_train_numeric_and_choice_options(data, out_dir):
    option = data.draw(st.sampled_from(sorted(TRAIN_NUMBERS) + sorted(TRAIN_CHOICES) + ["--threads"]))
    if option in TRAIN_NUMBERS:
        value = data.draw(TRAIN_NUMBERS[option])
    elif option == "--threads":
        value = data.draw(bad_int(1, 1024))
    else:
        value = data.draw(bad_choice(TRAIN_CHOICES[option]))
    head = [f"--threads={value}"] if option == "--threads" else []
    argv = head + ["train", "--epochs", "1", "--quiet", "--out", str(out_dir / "never")]
    if option != "--threads":
        argv.append(f"{option}={value}")
    cli_error(ENTRY, f"train {option}", argv, match=r"argument|must be|invalid")


def _valid_schedule(text):
    m = re.fullmatch(r"none|cosine|plateau\d{0,6}|step(\d{0,6})|onecycle(\d{0,6})", (text or "none").lower())
    return m is not None and (not m.group(1) or int(m.group(1)) >= 1) and \
        (not m.group(2) or 1 <= int(m.group(2)) <= 99)


def _valid_augment(text, side=8):
    if text.strip().lower() in ("", "none"):
        return True
    for token in re.split(r"[-+,]", text.strip().lower()):
        m = re.fullmatch(r"(shift|crop)(\d{0,6})|flip", token)
        if m is None or (m.group(2) and int(m.group(2)) > side):
            return False
    return True


WORDS = st.sampled_from(["step", "cosine", "none", "plateau", "onecycle", "shift", "crop", "flip", "conv", "relu", "-", "+", "x", "0",
                         "9", "99", "999999999", "7" * 20, ".", "_", " ", "é", "\n"])


@settings(max_examples=90)
@given(data=st.data())
def test_train_schedule_augment_model_classes(data, out_dir):
    option = data.draw(st.sampled_from(["--schedule", "--augment", "--model", "--classes", "--dataset"]))
    text = data.draw(st.one_of(st.lists(WORDS, min_size=1, max_size=5).map("".join), st.text(max_size=10)))
    argv = ["train", "--epochs", "1", "--quiet", "--per-class", "3", "--out", str(out_dir / "never")]
    if option == "--schedule":
        value = text if not _valid_schedule(text) else text + "!"
    elif option == "--augment":
        value = text if not _valid_augment(text) else text + "?"
    elif option == "--model":
        value = text + "!" if not re.search(r"[^a-z0-9.\-]", text.strip().lower()) else text
    elif option == "--classes":
        value = data.draw(st.sampled_from(["10", "-1", "0,0", "99", ",", "a", "0,x", "1.5", "5,5,5", "11,12"]))
    else:
        value = text + "?"
    argv.append(f"{option}={value}")
    cli_error(ENTRY, f"train {option}", argv)


@settings(max_examples=12)
@given(kind=st.sampled_from(["missing", "file", "empty dir", "junk config", "bad settings", "config not an object"]))
def test_train_resume_on_what_is_not_a_run(kind, tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    target = d / "run"
    if kind == "file":
        target.write_text("hello")
    elif kind != "missing":
        target.mkdir()
        if kind == "junk config":
            (target / "config.json").write_text("{not json")
        elif kind == "bad settings":
            (target / "config.json").write_text('{"config": {"epochs": -3, "lr": "fast", "batch_size": 0}}')
        elif kind == "config not an object":
            (target / "config.json").write_text('{"config": [1, 2]}')
    cli_error(ENTRY, f"train --resume ({kind})", ["train", "--resume", str(target), "--quiet"],
              match=r"resume|run directory|config")


@settings(max_examples=10)
@given(kind=st.sampled_from(["missing", "a file"]), dataset=st.sampled_from(["mnist", "digits", "cifar10"]))
def test_data_dir_that_is_not_a_folder(kind, dataset, tmp_path_factory, out_dir):
    d = tmp_path_factory.mktemp("datadir")
    target = d / "data"
    if kind == "a file":
        target.write_text("x")
    command = ["train", "--epochs", "1", "--quiet", "--out", str(out_dir / "never")]
    cli_error(ENTRY, f"train --data-dir ({kind})", command + ["--dataset", dataset, "--data-dir", str(target)],
              match="not a folder")


# ---- the other subcommands ---------------------------------------------------------------------------
@settings(max_examples=160)
@given(data=st.data())
def test_summary_gradcheck_predict_serve_options(data, model_file, image_file):
    command = data.draw(st.sampled_from(["summary", "gradcheck", "predict", "serve", "export", "evaluate"]))
    if command in ("summary", "gradcheck"):
        option = data.draw(st.sampled_from(["--input-shape", "--classes"] + (["--batch"] if command == "gradcheck"
                                                                             else [])))
        if option == "--input-shape":
            value = data.draw(st.one_of(
                st.lists(st.integers(-3, 70000), min_size=0, max_size=5).map(lambda v: ",".join(map(str, v))),
                st.sampled_from(JUNK + ["1,,8", "1,8,8,", "a,b,c", "1;8;8"])).filter(_bad_shape))
        else:
            value = data.draw(bad_int(1, 4096 if option == "--batch" else 1 << 20))
        argv = [command, "seed-b", f"{option}={value}"]
    elif command == "predict":
        value = data.draw(bad_int(1))
        option = "--top"
        argv = [command, str(model_file), str(image_file), f"--top={value}"]
    elif command == "serve":
        option = "--port"
        value = data.draw(bad_int(0, 65535))
        argv = [command, str(model_file), f"--port={value}"]
    elif command == "export":
        option = data.draw(st.sampled_from(["--format", "--input-shape", "--class-name"]))
        if option == "--format":
            value = data.draw(bad_choice(["onnx", "torch"]))
        elif option == "--input-shape":
            value = data.draw(st.sampled_from(["a", "0,8,8", "-1,8,8", "1,8", "1,8,8,8", "9" * 30, "1,0,8", "1,x,8",
                                               "1,16,16", "3,8,8"]))
        else:
            value = data.draw(st.sampled_from(["1bad", "class", "", "a-b", "def", "x y", "None", "load"]))
        argv = [command, str(model_file), "--format", "torch" if option == "--class-name" else "onnx",
                "--out", str(model_file.with_suffix(".never")), f"{option}={value}"]
    else:
        option = data.draw(st.sampled_from(["--dataset", "--per-class", "--seed", "--normalize"]))
        value = {"--dataset": data.draw(bad_choice(["mnist", "fashion-mnist", "cifar10", "digits", "optdigits",
                                                    "fashion_mnist", "fashionmnist", "cifar-10", "cifar_10"])),
                 "--per-class": data.draw(bad_int(1)), "--seed": data.draw(bad_int(0)),
                 "--normalize": data.draw(bad_choice(["scale", "standardize", "none"]))}[option]
        argv = [command, str(model_file), f"{option}={value}"]
    cli_error(ENTRY, f"{command} {option}", argv)


def _bad_shape(text):
    """Not C,H,W of three sizes from 1 to 65536 (a shape a preset could be built for)."""
    try:
        shape = [int(v) for v in text.split(",")]
    except ValueError:
        return True
    return len(shape) != 3 or not all(1 <= d <= 65536 for d in shape)


BAD_MODELS = ["nosuch", "seed-z", "conv8x3-relu-nosuchlayer", "conv0x3-flatten-dense10", "dense10", "conv8x3",
              "conv8x3-flatten-dense7", "maxpool100-flatten-dense10", "-", "--", "conv8x3--dense10",
              "flatten-conv8x3-dense10", "dropout1.5-flatten-dense10", "conv8x3s0-flatten-dense10",
              "conv8x3-" + "relu-" * 2000 + "flatten-dense10", "conv100000000x3-flatten-dense10",
              "conv8x999999-flatten-dense10", "conv8x3-flatten-dense999999999"]


@settings(max_examples=50)
@given(command=st.sampled_from(["summary", "gradcheck", "evaluate", "predict", "serve", "export"]),
       model=st.sampled_from(BAD_MODELS + ["missing.npz", "garbage.npz", "a directory"]))
def test_bad_models_for_every_command(command, model, tmp_path_factory, image_file):
    d = tmp_path_factory.mktemp("badmodel")
    if model == "garbage.npz":
        (d / model).write_bytes(os.urandom(64))
    elif model == "a directory":
        (d / model).mkdir()
    path = str(d / model) if model.endswith(".npz") or model == "a directory" else model
    if command in ("evaluate", "predict", "serve", "export") and path == model:
        path = str(d / (model[:40] + ".npz"))          # these commands take files only
    argv = [command, path]
    if command == "predict":
        argv.append(str(image_file))
    if command == "export":
        argv += ["--format", "onnx"]
    if command == "serve":
        argv += ["--port", "0"]
    cli_error(ENTRY, f"{command} bad model", argv)


IMAGE_KINDS = ["missing", "empty", "random bytes", "text", "truncated png", "a directory", "truncated jpeg",
               "png claiming 60000x60000"]


@settings(max_examples=24)
@given(kind=st.sampled_from(IMAGE_KINDS), seed=st.integers(0, 2**16))
def test_predict_bad_image_files(kind, seed, model_file, tmp_path_factory):
    d = tmp_path_factory.mktemp("badimage")
    path = d / "image.png"
    rng = np.random.default_rng(seed)
    write_bad_image(path, kind, rng)
    cli_error(ENTRY, f"predict image ({kind})", ["predict", str(model_file), str(path)], match="image")


def write_bad_image(path, kind, rng):
    import io
    import struct
    import zlib

    from PIL import Image
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("this is not an image " * int(rng.integers(1, 20)))
    elif kind in ("truncated png", "truncated jpeg"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            buf, format="PNG" if kind == "truncated png" else "JPEG")
        data = buf.getvalue()
        path.write_bytes(data[: int(rng.integers(8, len(data) // 2))])
    elif kind == "a directory":
        path.mkdir()
    elif kind == "png claiming 60000x60000":
        def chunk(tag, body):
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
        ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                         + chunk(b"IEND", b""))
    # "missing": nothing written


@settings(max_examples=20)
@given(argv=st.sampled_from([["nosuchcommand"], ["--nosuchoption"], ["train", "--nosuch"], ["experiments", "extra"],
                             ["summary"], ["predict", "m.npz"], ["train", "--epochs"], ["export"],
                             ["serve"], ["evaluate"], ["gradcheck"], ["train", "--optimizer"],
                             ["--threads"], ["train", "--classes"], ["train", "--epochs", "1", "--epochs"]]))
def test_usage_errors_are_one_line(argv):
    cli_error(ENTRY, "usage error", argv)


def test_serve_on_a_port_in_use_or_an_address_not_here(model_file):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        cli_error(ENTRY, "serve address", ["serve", str(model_file), "--port", str(port)], match="cannot listen")
    cli_error(ENTRY, "serve address", ["serve", str(model_file), "--host", "192.0.2.1", "--port", "0"],
              match="cannot listen")


SUBPROCESS_CASES = [
    ["train", "--epochs", "0"],
    ["train", "--lr", "nan", "--quiet"],
    ["summary", "conv8x3-relu-flatten-dense10", "--input-shape", "1,x,8"],
    ["evaluate", "/nonexistent/model.npz"],
    ["predict", "/nonexistent/model.npz", "x.png"],
]


@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=lambda a: " ".join(a)[:40])
def test_a_real_process_prints_one_line(argv):
    """What a user sees in a terminal: exactly one line on stderr, nothing on stdout, exit 2."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("SCRATCHCNN_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "scratchcnn"] + argv, capture_output=True, text=True, env=env,
                          timeout=120)
    first = check_cli_output(ENTRY + " (subprocess)", "one line", argv, proc.returncode, proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert first.startswith(f"scratchcnn {argv[0]}: error: ")


def test_serve_without_its_packages_says_which_pip_command_adds_them(model_file):
    """Installed with --no-deps (or fastapi removed): one line naming the pip command, not a traceback."""
    code = ("import sys; sys.modules['fastapi'] = None; from scratchcnn.app.cli import main; "
            f"sys.exit(main(['serve', {str(model_file)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    first = check_cli_output(ENTRY + " (subprocess)", "a package not installed", ["serve"], proc.returncode,
                             proc.stdout, proc.stderr, match=r"pip install 'scratchcnn\[serve\]'")
    assert "fastapi" in first and len(proc.stderr.strip().splitlines()) == 1
