"""scripts/jax-device-check without a GPU: its refusal, its dry run (the steps it would take on
the lent machine), and its report on made-up results beside the CPU table."""
import importlib.util
import pathlib
import sys

import numpy as np
import xarray as xr
from test_gpu_check import run_with_fake_smi

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "jax-device-check"


def _run(tmp_path, smi_lines, *args):
    return run_with_fake_smi(SCRIPT, tmp_path, smi_lines, *args)


def test_refuses_without_a_gpu_and_says_it_did_not_run(tmp_path):
    out = _run(tmp_path, [])
    assert out.returncode == 3
    assert "no GPU visible" in out.stderr and "NOT run" in out.stderr
    assert "+ " not in out.stdout  # nothing was installed or run


def test_dry_run_lists_the_steps_on_the_jax_engine_without_tensorflow(tmp_path):
    out = _run(tmp_path, ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"], "--dry-run", "--timeout", "300")
    assert out.returncode == 0, out.stderr
    steps = [ln for ln in out.stdout.splitlines() if ln.startswith("+ ")]
    assert "pip install" in steps[0] and "--no-index" in steps[0] and "--find-links .jaxcheck/wheels" in steps[0]
    assert "--target" in steps[0]
    assert any("KERAS_BACKEND=jax" in s for s in steps)
    assert 'sys.modules["tensorflow"] = None' in out.stdout  # the check proves TensorFlow unneeded
    assert any("repro data fetch mnist --from .jaxcheck/mnist.npz" in s for s in steps)
    assert any("timeout 300" in s and "repro run specs/figure-1.toml --panel b --grid reduced" in s
               for s in steps)
    assert any("jax_check_report.py" in s for s in steps)
    assert any("--grid full --panel a --panel b --panel c --estimate" in s for s in steps)
    assert "make" not in out.stdout and "tensorflow[" not in out.stdout  # no TensorFlow install
    no_gpu = _run(tmp_path, [], "--dry-run")
    assert no_gpu.returncode == 0 and "NOT run" in no_gpu.stdout and "KERAS_BACKEND=jax" in no_gpu.stdout


def _report_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("jax_check_report", ROOT / "scripts" / "jax_check_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_puts_jax_kstar_beside_the_cpu_table(tmp_path):
    rep = _report_module()
    dims = ("panel", "sparsity", "batch_size", "trial")
    ds = xr.Dataset({"steps_to_result": (dims[:3], np.array([[[1500, 500], [np.nan, 1900]]], float))},
                    coords={"panel": ["b"], "sparsity": [0.0, 0.9], "batch_size": [16, 64], "trial": [0]})
    lines = rep.kstar_lines(ds, rep.cpu_kstar())  # the committed CPU table of Figure 1(b)
    assert lines[2].split() == ["0", "1500", "|", "1576", "500", "|", "508"]
    assert lines[3].split() == ["0.9", "-", "|", "4872", "1900", "|", "1875"]
    runs = tmp_path / "runs" / "ab"
    runs.mkdir(parents=True)
    for i, device in enumerate(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]):
        (runs / f"ab{i}.json").write_text(
            f'{{"trained_on": {{"backend": "jax", "version": "0.11.2", "device": "{device}"}}}}')
    assert rep.trained_on(tmp_path) == ['{"backend": "jax", "device": "NVIDIA H100 80GB HBM3", "version": "0.11.2"}']
