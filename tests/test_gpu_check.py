"""scripts/gpu-check without a GPU: its refusal, its dry run, and its report on made-up results."""
import importlib.util
import pathlib
import subprocess

import numpy as np
import xarray as xr

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"


def _run(tmp_path, smi_lines, *args):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + "".join(f"echo '{ln}'\n" for ln in smi_lines)
                                         + ("exit 0\n" if smi_lines else "exit 9\n"))
    (bin_dir / "nvidia-smi").chmod(0o755)
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})


def test_refuses_without_a_gpu_and_says_it_did_not_run(tmp_path):
    out = _run(tmp_path, [])
    assert out.returncode == 3
    assert "no GPU visible" in out.stderr and "NOT run" in out.stderr
    assert "+ " not in out.stdout  # nothing was installed or run


def test_dry_run_lists_the_steps(tmp_path):
    out = _run(tmp_path, ["GPU 0: NVIDIA H200 (UUID: GPU-0)", "GPU 1: NVIDIA H200 (UUID: GPU-1)"], "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "2 GPU(s)" in out.stdout
    steps = [ln for ln in out.stdout.splitlines() if ln.startswith("+ ")]
    assert "make --no-print-directory venv DEVICE=gpu" in steps[0]
    assert "list_physical_devices" in out.stdout  # TensorFlow must see the device
    assert any("--grid full --panel a --panel b --panel c --estimate" in s for s in steps)
    assert any("timeout 420" in s and "repro run specs/figure-1.toml --panel b --grid reduced" in s for s in steps)
    # without a GPU the dry run still shows the steps, and says the check was not run
    no_gpu = _run(tmp_path, [], "--dry-run")
    assert no_gpu.returncode == 0 and "NOT run" in no_gpu.stdout and "DEVICE=gpu" in no_gpu.stdout


def _report_module():
    spec = importlib.util.spec_from_file_location("gpu_check_report", ROOT / "scripts" / "gpu_check_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results(kstar, steps, wall):
    """A made-up results file: 1 panel 'b', sparsities 0/0.9, B 16/64, 2 trials."""
    dims = ("panel", "sparsity", "batch_size", "trial")
    return xr.Dataset(
        {"steps_to_result": (dims[:3], np.array([kstar], float)),
         "steps": (dims, np.array([steps])), "wall_time": (dims, np.array([wall], float))},
        coords={"panel": ["b"], "sparsity": [0.0, 0.9], "batch_size": [16, 64], "trial": [0, 1]})


def test_report_puts_gpu_kstar_beside_cpu_and_counts_examples(tmp_path):
    rep = _report_module()
    steps = [[[100, 0], [50, 50]], [[100, 100], [0, 0]]]
    wall = [[[1.0, np.nan], [1.0, 1.0]], [[1.0, 1.0], [np.nan, np.nan]]]
    gpu = _results([[96, 40], [200, np.nan]], steps, wall)
    cpu = _results([[96, 44], [208, 120]], steps, wall)
    lines = rep.kstar_table(gpu, cpu)
    assert lines[2].split() == ["0", "96", "|", "96", "40", "|", "44"]
    assert lines[3].split() == ["0.9", "200", "|", "208", "-", "|", "120"]
    assert "no CPU table" in rep.kstar_table(gpu, None)[-1]
    # examples: 100 x 16 + (50 + 50) x 64 + (100 + 100) x 16 = 11,200 in 5 s of trial time
    line = rep.throughput_line(gpu, "10", "1234")
    assert "trained 11,200 examples in 5 s" in line and "2,240 examples/s per worker" in line
    assert "1,120 examples/s over the 10 s run" in line and "peak device memory 1234 MiB" in line
    (tmp_path / "gpu").mkdir()
    gpu.to_netcdf(tmp_path / "gpu" / "figure-1.reduced.nc")
    assert rep.main([str(tmp_path / "gpu"), str(tmp_path / "none"), "10", "?"]) == 0
    assert rep.main([str(tmp_path / "none"), str(tmp_path / "none"), "10", "?"]) == 1
