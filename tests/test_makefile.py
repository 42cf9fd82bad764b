"""The README's commands: `make figure-N` must really run, plot and verify (dry run here)."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("spec", sorted(p.stem for p in (ROOT / "specs").glob("figure-*.toml")))
def test_make_figure_runs_plots_and_verifies(spec):
    # make silently does nothing for a .PHONY target matched only by an implicit rule.
    out = subprocess.run(["make", "-n", spec], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for verb in ("run", "plot", "verify"):
        assert f"-m repro {verb} specs/{spec}.toml --grid reduced" in out.stdout, out.stdout


# ---------------------------------------------------------------- which TensorFlow build `make` installs
# A stand-in nvidia-smi on a temporary PATH plays the GPU machine; `make -n` with VENV in a
# temporary folder prints the install commands without running them, so nothing is installed.
H200 = "GPU 0: NVIDIA H200 (UUID: GPU-6f1c2a4e-0000-0000-0000-000000000000)"
NO_DRIVER = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."


def _make_n(tmp_path, smi_output=None, smi_status=0, *args):
    """`make -n venv` with a stand-in nvidia-smi (None: no nvidia-smi on PATH at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    if smi_output is not None:
        smi.write_text(f"#!/bin/sh\necho '{smi_output}'\nexit {smi_status}\n")
        smi.chmod(0o755)
    # a PATH with make, sh and grep but no real nvidia-smi
    path = f"{bin_dir}:/usr/bin:/bin"
    out = subprocess.run(["make", "-n", "venv", f"VENV={tmp_path / 'venv'}", *args], cwd=ROOT,
                         capture_output=True, text=True, env={"PATH": path, "HOME": str(tmp_path)})
    return out


def _installed_build(out):
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "pip install -q -e" in ln]
    assert len(lines) == 1, out.stdout
    return lines[0].split("'.[")[1].split("]")[0]


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


@needs_make
def test_make_installs_the_gpu_build_when_nvidia_smi_lists_a_gpu(tmp_path):
    out = _make_n(tmp_path, H200)
    assert _installed_build(out) == "gpu,test,jax"
    # the CPU build shares the `tensorflow` package: it is removed before the CUDA one goes in
    assert "pip uninstall -q -y tensorflow-cpu" in out.stdout
    assert out.stdout.index("uninstall") < out.stdout.index("pip install -q -e")
    assert "touch " + str(tmp_path / "venv" / ".installed-gpu") in out.stdout


@needs_make
@pytest.mark.parametrize("smi", [None, (NO_DRIVER, 9), ("No devices were found", 6)],
                         ids=["no-nvidia-smi", "no-driver", "no-devices"])
def test_make_installs_the_cpu_build_without_a_gpu(tmp_path, smi):
    out = _make_n(tmp_path, *(smi or (None,)))
    assert _installed_build(out) == "cpu,test,jax"
    assert "pip uninstall -q -y tensorflow " in out.stdout + " "
    assert "touch " + str(tmp_path / "venv" / ".installed-cpu") in out.stdout


@needs_make
def test_device_variable_overrides_the_detection(tmp_path):
    assert _installed_build(_make_n(tmp_path, H200, 0, "DEVICE=cpu")) == "cpu,test,jax"
    assert _installed_build(_make_n(tmp_path, None, 0, "DEVICE=gpu")) == "gpu,test,jax"
    bad = _make_n(tmp_path, None, 0, "DEVICE=tpu")
    assert bad.returncode != 0 and "DEVICE must be cpu or gpu, got 'tpu'" in bad.stderr


@needs_make
def test_switching_build_reinstalls_and_the_same_build_does_not(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed-cpu").touch()  # a CPU install newer than pyproject.toml
    same = _make_n(tmp_path, None, 0, "DEVICE=cpu")
    assert same.returncode == 0 and "pip install" not in same.stdout, same.stdout
    switch = _make_n(tmp_path, H200)
    assert _installed_build(switch) == "gpu,test,jax"
    assert f"rm -f {venv}/.installed-*" in switch.stdout  # the CPU stamp goes with the CPU build


@needs_make
def test_figure_target_installs_the_chosen_build(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\necho '{H200}'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    out = subprocess.run(["make", "-n", "figure-1", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                         capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert _installed_build(out) == "gpu,test,jax"
    assert "-m repro run specs/figure-1.toml --grid reduced" in out.stdout


def test_cpu_and_gpu_extras_pin_the_same_tensorflow_versions():
    import tomllib
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    (cpu,), (gpu,) = extras["cpu"], extras["gpu"]
    assert cpu.startswith("tensorflow-cpu>=") and gpu.startswith("tensorflow[and-cuda]>=")
    assert cpu.split(">=", 1)[1] == gpu.split(">=", 1)[1]
    # neither build in the base dependencies: installing .[gpu] must not pull the CPU build back
    assert not any(d.startswith("tensorflow") for d in meta["dependencies"])


# ---------------------------------------------------------------- the end of `make figure-N`
# The recipe itself runs (not -n), with a stand-in python in a temporary VENV that logs its
# arguments and exits with the status the test gives each step; `-o data` skips set-up.
STAND_IN = """#!/bin/sh
echo "$*" >> "$LOG"
case "$3" in run) exit $RUN;; plot) exit $PLOT;; verify) exit $VERIFY;; esac
exit 0
"""


def _make_figure(tmp_path, run=0, plot=0, verify=0):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python").write_text(STAND_IN)
    (bin_dir / "python").chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    out = subprocess.run(["make", "-s", "-o", "data", "figure-1", f"VENV={tmp_path / 'venv'}"],
                         cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOG": str(log),
                              "RUN": str(run), "PLOT": str(plot), "VERIFY": str(verify)})
    calls = [ln.split()[2] for ln in log.read_text().splitlines()]
    summary = [ln for ln in log.read_text().splitlines() if " summary " in ln]
    return out, calls, summary[0] if summary else None


@needs_make
@pytest.mark.parametrize("statuses,steps,status,step", [
    ((0, 0, 0), ["run", "plot", "verify", "summary"], 0, "verify"),
    ((0, 0, 1), ["run", "plot", "verify", "summary"], 1, "verify"),   # a claim FAILed
    ((2, 0, 0), ["run", "summary"], 2, "run"),                         # usage error: no plot
    ((0, 130, 0), ["run", "plot", "summary"], 130, "plot"),
], ids=["pass", "claim-fails", "run-usage-error", "plot-interrupted"])
def test_make_figure_ends_with_the_summary_and_the_first_failing_status(tmp_path, statuses, steps,
                                                                         status, step):
    out, calls, summary = _make_figure(tmp_path, *statuses)
    # make exits 2 when a recipe fails, naming the recipe's own status
    assert out.returncode == (2 if status else 0), out.stdout + out.stderr
    assert (f"figure-1] Error {status}" in out.stderr) == bool(status), out.stderr
    assert calls == steps
    assert summary.startswith("-m repro summary specs/figure-1.toml --grid reduced --seconds ")
    assert summary.endswith(f"--status {status} --step {step}")
    assert float(summary.split("--seconds ")[1].split()[0]) >= 0
