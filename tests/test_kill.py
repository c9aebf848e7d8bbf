"""Nothing lost, nothing left behind: kill -9 a process at random moments while it saves a model
and while ``scratchcnn train`` writes its run directory.

- Saves: a child process (forked, so it starts in milliseconds) saves the same model file in a
  loop, each version's weights filled with its version number; the parent kills it after a
  random short delay, 30 times. The file is always loadable and always one whole version (its
  weights all equal the version its metadata names), and the next save removes every temporary
  file the killed writers left.
- Runs: a child runs ``scratchcnn train`` on a small model and the 8x8 digits; the parent kills it
  at a random moment (data loading, training, checkpoints, the report and its pictures), 20
  times. Every model file in the run directory loads, config.json parses, and ``--resume`` on
  the directory either finishes the run (exit 0, no temporary file left) or says in one line
  why it cannot (exit 2).
"""
import contextlib
import io
import json
import os
import signal
import time

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.app.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SAVE_KILLS = 30
RUN_KILLS = 20


def _temporaries(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith(".") and f.endswith(".tmp"))


def _fork(child):
    """Run ``child()`` in a forked process (its output to /dev/null); returns the pid."""
    pid = os.fork()
    if pid == 0:                                   # the child: never returns to pytest
        code = 1
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            child()
            code = 0
        finally:
            os._exit(code)
    return pid


def _kill(pid, delay):
    time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def test_killed_saves_never_destroy_the_model_file(tmp_path):
    rng = np.random.default_rng(7)
    sc.manual_seed(0)
    model = sc.Sequential(sc.Dense(256, 512), sc.ReLU(), sc.Dense(512, 10), input_shape=(256,))
    model.fit(rng.random((8, 256), dtype=np.float32), rng.integers(0, 10, 8), epochs=1, verbose=0,
              optimizer=sc.optim.Adam(model.parameters(), lr=1e-3))      # with optimizer state: ~3 MB a save
    path = tmp_path / "model.npz"

    def set_version(v):
        for p in model.parameters():
            p.data[...] = v
        model.metadata["version"] = v

    set_version(0)
    sc.save(model, path)

    def save_forever():
        v = int(time.time() * 1e6)
        while True:
            v += 1
            set_version(v)
            sc.save(model, path)

    killed, versions, left = 0, set(), 0
    for _ in range(SAVE_KILLS):
        pid = _fork(save_forever)
        killed += _kill(pid, float(rng.uniform(0.02, 0.25)))
        loaded = sc.load(path)                                 # always loadable ...
        v = loaded.metadata["version"]
        for p in loaded.parameters():                          # ... and always one whole version
            assert np.all(p.data == np.float32(v)), "a save was mixed with another"
        assert loaded.optimizer is not None and loaded.history is not None
        versions.add(v)
        left = max(left, len(_temporaries(tmp_path)))
    assert killed == SAVE_KILLS
    assert len(versions) > SAVE_KILLS // 2, "the children hardly ever finished a save: the test proves little"
    set_version(1)
    sc.save(model, path)                                       # the next save cleans up after the killed ones
    assert _temporaries(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    print(f"{killed} kills, {len(versions)} versions seen, at most {left} temporary files left before the next save")


def test_temporaries_of_live_writers_and_other_files_are_kept(tmp_path):
    """The clean-up removes only its own pattern, and not a live writer's file."""
    from scratchcnn import fileio
    mine_live = tmp_path / f".model.npz.{os.getpid()}.abcd1234.tmp"
    dead = tmp_path / ".model.npz.999999999.abcd1234.tmp"
    old_style = tmp_path / ".model.npz.abcd1234.tmp"
    other = tmp_path / ".other.npz.999999999.x.tmp"
    unrelated = tmp_path / "notes.tmp"
    for p in (mine_live, dead, old_style, other, unrelated):
        p.write_bytes(b"x")
    past = time.time() - 60
    os.utime(old_style, (past, past))
    fileio.atomic_write(tmp_path / "model.npz", lambda f: f.write(b"data"))
    assert sorted(os.listdir(tmp_path)) == sorted([mine_live.name, other.name, unrelated.name, "model.npz"])


def _quick_pictures(monkeypatch):
    """The resumes write every file of a run, but their pictures as 1-pixel PNGs (matplotlib's
    pictures take seconds; the killed children draw the real ones)."""
    from scratchcnn.app import plots
    from scratchcnn.fileio import atomic_write
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
           b"\x00\x00\x00\nIDATx\x9cc\xf8\x0f\x00\x01\x01\x01\x00\x18\xdd\x8d\xb0\x00\x00\x00\x00IEND\xaeB`\x82")
    for name in ("plot_history", "plot_confusion_matrix", "plot_filters", "plot_feature_maps", "plot_misclassified"):
        monkeypatch.setattr(plots, name, lambda *args, **kw: atomic_write(args[-1], lambda f: f.write(png)))


def test_killed_training_runs_resume_or_say_why_not(tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    spec = "conv4x3same-bn-relu-maxpool2-flatten-dense10"
    outcomes = {"resumed": 0, "refused": 0}
    phases = set()
    for i in range(RUN_KILLS):
        run = tmp_path / f"run{i}"
        epochs = int(rng.integers(2, 4))
        argv = ["train", "--model", spec, "--per-class", "12", "--test-per-class", "5", "--epochs", str(epochs),
                "--batch-size", "16", "--out", str(run), "--quiet"]
        pid = _fork(lambda: main(argv))
        # two kills in three before the report (data, training, checkpoints), one while it is written
        _kill(pid, float(rng.uniform(0.0, 1.2) if i % 3 else rng.uniform(1.2, 3.5)))
        present = sorted(os.listdir(run)) if run.exists() else []
        phases.add("report.md" in present and "done" or "metrics.json" in present and "report" or
                   "last.npz" in present and "training" or "config.json" in present and "started" or "nothing")
        for name in present:
            if name.endswith(".npz"):
                sc.load(run / name)                            # every model file in it loads
            elif name.endswith(".json"):
                json.loads((run / name).read_text())           # every JSON file parses
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), monkeypatch.context() as mp:
            _quick_pictures(mp)
            code = main(["train", "--resume", str(run), "--epochs", str(epochs), "--quiet"])
        text = err.getvalue()
        assert "Traceback" not in text and "internal error" not in text, text
        if code == 0:
            outcomes["resumed"] += 1
            assert _temporaries(run) == [], os.listdir(run)
            assert json.loads((run / "history.json").read_text())["epoch"] == list(range(epochs))
            sc.load(run / "model.npz")
        else:
            outcomes["refused"] += 1
            lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("note:")]
            assert code == 2 and len(lines) == 1 and lines[0].startswith("scratchcnn train: error: --resume"), text
    assert outcomes["resumed"] >= RUN_KILLS // 2, outcomes
    print(f"{RUN_KILLS} kills ({', '.join(sorted(phases))}): {outcomes}")
