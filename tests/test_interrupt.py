"""Interrupting REAL `repro run` processes (issue 32), on SYNTHETIC MNIST-shaped data
(conftest.py's `synthetic_mnist_images`, written as mnist.npz in a temporary REPRO_DATA).

- SIGTERM to the parent of a 2-worker run while its workers race: within seconds no process of
  the run is left, it prints the command that resumes and exits 143; that command completes
  the run from the races' checkpoints, with the results of a run never interrupted.
- SIGKILL of the parent alone: its workers die with it (PR_SET_PDEATHSIG, or their parent
  watch), and the resumed run again equals the uninterrupted one.
- Two runs of the same spec into one folder at once: each study point is raced by one of them
  (repro.lease), so together they train the steps of one run, and both write its results.
"""
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr

from conftest import synthetic_mnist_images as synthetic_images

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = """\
[figure]
id = "interrupt-test"
title = "SIGTERM, SIGKILL and two runs on one folder (synthetic MNIST-shaped data)"
seed = 5

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.25

[panel.search]
learning_rate = { min = 0.0003, max = 0.3, scale = "log" }
momentum = { min = 0.8, max = 0.95, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [16, 32]
sparsities = [0.0]
trials = 3
max_steps = 160
eval_every = 8
"""
KEYS = ("steps_to_result", "best_trial", "status", "steps", "learning_rate", "momentum",
        "run_id", "val_error", "eval_step")
RESULTS = "interrupt-test.full.nc"
GONE_WITHIN_S = 15.0  # a run's processes must all be gone this long after the signal

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    x_train, y_train = synthetic_images(60000, seed=0)
    x_test, y_test = synthetic_images(10000, seed=1)
    np.savez(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", REPRO_DATA=str(folder))


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(SPEC)
    return path


def command(spec, results, workers=2):
    return [sys.executable, "-m", "repro", "run", str(spec), "--grid", "full", "--results",
            str(results), "--workers", str(workers), "--checkpoint-every", "0"]


def trained_steps(output):
    """Steps the run trained (its last line: `trained N trials ... trained S steps`)."""
    return int(re.search(r"; trained ([\d,]+) steps", output).group(1).replace(",", ""))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, spec, env):
    """(results file, steps trained) of an uninterrupted 2-worker run."""
    results = tmp_path_factory.mktemp("reference")
    ref = subprocess.run(command(spec, results), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1200)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    return results / RESULTS, trained_steps(ref.stdout)


def assert_same_results(path, reference):
    with xr.open_dataset(reference) as a, xr.open_dataset(path) as b:
        for key in KEYS:
            np.testing.assert_array_equal(a[key].values, b[key].values, err_msg=key)
        assert (a["status"].values > 0).all()


# ------------------------------------------------------------------------ processes, via /proc
def _stat(pid):
    """(state, ppid) of process `pid`, or None if it is gone."""
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def descendants(pid):
    """Every live process below `pid` (children, their children, ...)."""
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[1], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pids):
    return [p for p in pids if (_stat(p) or ("Z",))[0] != "Z"]


def start(spec, results, env, workers=2):
    proc = subprocess.Popen(command(spec, results, workers), cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


def checkpoint_steps(results):
    """The step of every race checkpoint in `results`."""
    from repro.checkpoint import RaceCheckpoint
    steps = []
    for path in (results / "checkpoints").glob("*.npz") if results.exists() else ():
        try:
            steps.append(RaceCheckpoint(results, path.stem).load()[0]["step"])
        except Exception:  # removed between glob and load: its race is over
            pass
    return steps


def wait_until_racing(proc, lines, results, workers=2, min_step=1, timeout=600):
    """Wait until `workers` worker processes run and a race has checkpointed step `min_step`
    or a later one."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "".join(lines)[-3000:]
        assert time.monotonic() < deadline, "".join(lines)[-3000:]
        racing = [s for s in checkpoint_steps(results) if s >= min_step]
        workers_up = len([p for p in descendants(proc.pid)
                          if "multiprocessing" in _cmdline(p) and "resource_tracker" not in _cmdline(p)])
        if racing and workers_up >= workers:
            return descendants(proc.pid)
        time.sleep(0.05)


def _cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def gone_after(pids, limit):
    """Seconds until none of `pids` is alive (fails past `limit`)."""
    t0 = time.monotonic()
    while alive(pids):
        assert time.monotonic() - t0 < limit, f"still running after {limit} s: {alive(pids)}"
        time.sleep(0.05)
    return time.monotonic() - t0


def resume(spec, results, env):
    done = subprocess.run(command(spec, results), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


# ------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("signum,workers", [(signal.SIGTERM, 2), (signal.SIGINT, 1)],
                         ids=["SIGTERM-2-workers", "SIGINT-in-process"])
def test_a_signal_stops_every_worker_prints_the_resume_command_and_the_resume_completes(
        tmp_path, spec, env, reference, signum, workers):
    results = tmp_path / "results"
    proc, lines = start(spec, results, env, workers)
    procs = wait_until_racing(proc, lines, results, workers if workers > 1 else 0)
    t0 = time.monotonic()
    os.kill(proc.pid, signum)  # the parent only, as `kill PID` does
    assert proc.wait(timeout=GONE_WITHIN_S) == 128 + signum, "".join(lines)[-3000:]
    seconds = gone_after(procs, GONE_WITHIN_S - (time.monotonic() - t0))
    print(f"{signal.Signals(signum).name} ({workers} workers): every process of the run gone "
          f"after {time.monotonic() - t0:.2f} s ({seconds:.2f} s after the parent)")
    time.sleep(0.2)
    out = "".join(lines)
    want = (f"resume with: python -m repro run {spec} --grid full --results {results} "
            f"--workers {workers}")
    assert f"interrupted by {signal.Signals(signum).name}" in out and want in out, out[-3000:]
    assert list((results / "checkpoints").glob("*.npz"))  # races in flight keep their checkpoint

    again = resume(spec, results, env)
    resumed = re.findall(r"resuming \d+ racing trials from the checkpoint at step [1-9][\d,]*", again)
    assert resumed, again
    print("resumed:", resumed)
    assert_same_results(results / RESULTS, reference[0])
    assert not list((results / "checkpoints").glob("*.npz"))


def test_sigkill_of_the_parent_takes_its_workers_too_and_the_race_resumes(tmp_path, spec, env,
                                                                          reference):
    results = tmp_path / "results"
    proc, lines = start(spec, results, env)
    procs = wait_until_racing(proc, lines, results, min_step=16)  # 2 rounds raced
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    gone_after(procs, GONE_WITHIN_S)
    print(f"SIGKILL of the parent: its workers gone after {time.monotonic() - t0:.2f} s")

    again = resume(spec, results, env)
    resumed = re.findall(r"resuming \d+ racing trials from the checkpoint at step ([\d,]+)", again)
    assert resumed and max(int(s.replace(",", "")) for s in resumed) >= 16, again
    print("resumed:", resumed)
    assert_same_results(results / RESULTS, reference[0])


def test_two_runs_on_one_folder_train_each_point_once(tmp_path, spec, env, reference):
    results = tmp_path / "results"
    a = subprocess.Popen(command(spec, results, workers=1), cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    b = subprocess.Popen(command(spec, results, workers=1), cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out_a, _ = a.communicate(timeout=1200)
    out_b, _ = b.communicate(timeout=1200)
    assert a.returncode == 0 and b.returncode == 0, out_a[-3000:] + out_b[-3000:]
    steps = trained_steps(out_a), trained_steps(out_b)
    print(f"two runs on one folder: trained {steps} steps, one run alone {reference[1]}")
    assert steps[0] and steps[1]  # both raced (each took a point) ...
    assert sum(steps) == reference[1]  # ... and no trial was trained twice
    assert_same_results(results / RESULTS, reference[0])
