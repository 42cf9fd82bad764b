"""`repro bench` end to end on a one-point slice of Figure 1(b) (REAL MNIST): the naive Keras
harness (keras-tuner + model.fit + evaluation callback) and repro reach identical
steps-to-result, and the report has every number the issue asks for."""
import subprocess
import sys
import pathlib

import pytest

from repro import data as data_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not data_mod.cache_path("mnist").exists(), reason="MNIST not fetched (make data)")
def test_bench_naive_and_repro_agree_on_a_slice_of_figure_1b():
    r = subprocess.run([sys.executable, "-m", "repro", "bench", "--panel", "b", "--batch-sizes", "256",
                        "--sparsities", "0", "--trials", "2", "--workers", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "identical steps-to-result: yes" in out
    assert "naive K*=" in out and " same" in out and "DIFFERENT" not in out
    for what in ("wall time: naive", "trained steps: naive", "evaluated validation examples",
                 "peak resident memory", "overhead over that floor"):
        assert what in out, what
