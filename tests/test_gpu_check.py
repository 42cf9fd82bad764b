"""scripts/gpu-check without a GPU: its refusal, its dry run, and its report on made-up results."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import xarray as xr

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"


def _run(tmp_path, smi_lines, *args):
    return run_with_fake_smi(SCRIPT, tmp_path, smi_lines, *args)


def run_with_fake_smi(script, tmp_path, smi_lines, *args):
    """Run a device-check `script` where `nvidia-smi -L` prints `smi_lines` (none: no GPU)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + "".join(f"echo '{ln}'\n" for ln in smi_lines)
                                         + ("exit 0\n" if smi_lines else "exit 9\n"))
    (bin_dir / "nvidia-smi").chmod(0o755)
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60,
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


def test_report_puts_gpu_kstar_beside_cpu_and_counts_examples():
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


def test_report_reads_the_file_repro_run_writes():
    """The script's default is Figure 1's reduced grid, whose file `repro run` names figure-1.nc."""
    from repro import spec as spec_mod
    rep = _report_module()
    sp = spec_mod.load_spec(ROOT / "specs" / "figure-1.toml")
    assert rep.results_file("R") == spec_mod.results_path("R", sp, "reduced") == pathlib.Path("R/figure-1.nc")
    assert "figure-1.nc" in SCRIPT.read_text() and "reduced.nc" not in SCRIPT.read_text()


# A spec with Figure 1's id and panel (b), on a grid small enough to train in seconds on the
# SYNTHETIC data of conftest.py: `repro run` names its file as it names Figure 1's.
TINY_FIGURE_1 = """\
[figure]
id = "figure-1"

[[panel]]
id = "b"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.01

[panel.search]
learning_rate = { min = 1e-3, max = 0.3, scale = "log" }
momentum = { min = 0.5, max = 0.9, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [8, 16]
sparsities = [0.0, 0.5]
trials = 2
max_steps = 64
eval_every = 4

[panel.grid.reduced]
batch_sizes = [8, 16]
sparsities = [0.0, 0.5]
trials = 2
max_steps = 64
eval_every = 4
why = "a test: seconds on synthetic data"
"""


def test_report_script_on_what_a_real_repro_run_wrote(tmp_path, monkeypatch, capsys):
    """`repro run` (in this process, on synthetic data) writes the GPU folder; the report script,
    run as gpu-check runs it, finds that file, prints K* beside the CPU's and counts examples."""
    from conftest import make_data
    from repro import __main__ as cli, data as data_mod, run

    data = make_data(n_train=64, n_val=1000)
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})
    spec = tmp_path / "specs" / "figure-1.toml"
    spec.parent.mkdir()
    spec.write_text(TINY_FIGURE_1)
    for folder in ("gpu", "cpu"):
        code = cli.main(["run", str(spec), "--panel", "b", "--grid", "reduced", "--workers", "1",
                         "--results", str(tmp_path / folder)])
        assert code == 0, capsys.readouterr()
    written = sorted(p.name for p in (tmp_path / "gpu").glob("*.nc"))
    assert written == ["figure-1.nc"]

    def report(gpu_dir, cpu_dir):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check_report.py"),
                               "--spec", str(spec), "--grid", "reduced", gpu_dir, cpu_dir, "30", "512"],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))

    out = report(str(tmp_path / "gpu"), str(tmp_path / "cpu"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "K* of Figure 1(b), reduced grid (GPU | CPU):"
    assert lines[1].split() == ["s", "B=8", "B=16"]
    assert [ln.split()[0] for ln in lines[2:4]] == ["0", "0.5"]
    # same spec, same machine: the two runs agree bit for bit, so each cell reads 'K | K'
    for ln in lines[2:4]:
        cells = ln.split()[1:]
        assert cells[1] == cells[4] == "|" and cells[0] == cells[2] and cells[3] == cells[5], ln
    assert "trained " in lines[-1] and "peak device memory 512 MiB" in lines[-1]
    # no GPU results: exit 1, naming the file it looked for
    none = report(str(tmp_path / "none"), str(tmp_path / "cpu"))
    assert none.returncode == 1 and str(tmp_path / "none" / "figure-1.nc") in none.stderr
