"""The allocator tuning (scratchcnn.kernels.allocator): freed big arrays are reused, not
faulted in again every batch; SCRATCHCNN_MALLOC=system leaves the C library alone."""
import json
import os
import platform
import subprocess
import sys

import pytest

import scratchcnn as sc

CHILD = r"""
import json, resource, sys
import numpy as np
import scratchcnn as sc
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
from scratchcnn.app.presets import seed_d
at_import = sc.kernels.allocator_tuned()             # importing scratchcnn changes nothing
sc.manual_seed(0)
model = seed_d((1, 28, 28), 10)                      # conv 32@7x7: 4.7 MB outputs at batch 64
x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
model.predict(x[:2])                                 # predict (like fit, evaluate) tunes it
with sc.no_grad():
    model(x)                                         # warm up: workspaces, the heap grows once
    before = faults()
    for _ in range(20):
        model(x)                                     # fresh conv / ReLU outputs every batch
print(json.dumps({"at_import": at_import, "tuned": sc.kernels.allocator_tuned(), "faults": faults() - before}))
"""


def _run_child(env_value):
    env = dict(os.environ)
    env.pop("SCRATCHCNN_MALLOC", None)
    if env_value is not None:
        env["SCRATCHCNN_MALLOC"] = env_value
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)


def _child(env_value):
    return json.loads(_run_child(env_value).stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt tuning applies to glibc only")
def test_freed_arrays_are_reused_without_page_faults():
    tuned, system = _child(None), _child("system")
    assert tuned["at_import"] is False and system["at_import"] is False
    assert tuned["tuned"] is True and system["tuned"] is False
    pages_per_array = 64 * 32 * 24 * 24 * 4 // 4096
    # glibc's default gives some big freed blocks back to the system, and new ones fault their
    # pages in: how many depends on its heuristics and the order of the model's allocations
    # (1,000-2,000 pages over these 20 batches since the fast plan fuses the ReLU into the
    # convolution's output; 22,000 before), always several hundred
    assert system["faults"] > pages_per_array / 4
    # tuned: the same heap pages serve every batch
    assert tuned["faults"] < pages_per_array / 16


def test_keep_freed_memory_is_idempotent():
    first = sc.kernels.keep_freed_memory()
    assert sc.kernels.keep_freed_memory() == first == sc.kernels.allocator_tuned()


def test_unknown_setting_is_warned_about_and_treated_as_default():
    run = _run_child("sytem")                       # a typo
    assert "SCRATCHCNN_MALLOC='sytem' is not understood" in run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["tuned"] is (platform.libc_ver()[0] == "glibc")


def test_import_has_no_side_effect_and_work_tunes_it():
    code = ("import scratchcnn as sc, numpy as np; a = sc.kernels.allocator_tuned(); "
            "m = sc.Sequential(sc.Flatten(), sc.Dense(4, 2), input_shape=(1, 2, 2)); "
            "x = np.zeros((3, 1, 2, 2), np.float32); y = np.array([0, 1, 0]); "
            "m.evaluate(x, y); print(a, sc.kernels.allocator_tuned())")
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHCNN_MALLOC"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out.stdout.split() == ["False", str(glibc)]
