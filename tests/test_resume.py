"""kill -9 at several moments of a REAL run (MNIST, tiny grid) loses nothing and repeats nothing.

An uninterrupted run into one folder is the reference. A second folder's run is killed with
SIGKILL (its whole process group: the parent and its worker processes) at several moments:
during start-up, and after the 1st and 6th finished trial, each time resumed with the same
command; then it runs to the end. Checks:
- no trial is trained twice across the runs (a trial finished before a kill is reused),
- the final dataset equals the reference bit for bit: steps-to-result, best trials, statuses,
  steps, metaparameters, run ids and every validation curve (this is also the determinism test:
  the same spec in two folders, different processes, identical numbers).
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

from repro import data as data_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = """\
[figure]
id = "resume-test"
title = "kill -9 and resume (tiny real MNIST grid)"
seed = 3

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.2

[panel.search]
learning_rate = { min = 0.003, max = 0.1, scale = "log" }
momentum = { min = 0.8, max = 0.95, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [32, 128]
sparsities = [0.0, 0.5]
trials = 3
max_steps = 120
eval_every = 8
"""
TRIAL_LINE = re.compile(r"\((\w+)\) B=(\d+) s=([\d.]+) trial (\d+): (\w+) .*\) [\d.]+s( stored)?")
KEYS = ("steps_to_result", "best_trial", "status", "steps", "learning_rate", "momentum",
        "run_id", "val_error", "eval_step")

pytestmark = pytest.mark.skipif(not data_mod.cache_path("mnist").exists(),
                                reason="MNIST not fetched (make data)")


def command(results, workers=2):
    return [sys.executable, "-m", "repro", "run", str(results.parent / "spec.toml"),
            "--grid", "full", "--results", str(results), "--workers", str(workers)]


def start(results):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(command(results), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def trained_trials(lines):
    """(panel, B, s, trial) of every trial a run trained and finished (not re-read)."""
    return [m.group(1, 2, 3, 4) for m in map(TRIAL_LINE.search, lines) if m and not m.group(6)]


def already_stored(lines):
    """How many trials a run found stored when it started (its "resuming:" line; 0 without)."""
    found = [re.search(r"resuming: (\d+) of \d+ trials already stored", line) for line in lines]
    return next((int(m[1]) for m in found if m), 0)


def run_until_killed(results, after_trials=None, after_seconds=None):
    """Start a run and SIGKILL its process group after n finished trials or t seconds."""
    proc, lines, t0 = start(results), [], time.monotonic()
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        seen = sum(bool(TRIAL_LINE.search(line)) for line in list(lines))
        if (after_trials is not None and seen >= after_trials) or \
                (after_seconds is not None and time.monotonic() - t0 > after_seconds):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    reader.join(timeout=10)
    return proc.returncode, lines


def test_kill_9_at_several_moments_then_resume_equals_uninterrupted_run(tmp_path):
    for name in ("reference", "killed", "serial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.toml").write_text(SPEC)
    ref = subprocess.run(command(tmp_path / "reference" / "results"), cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    total = len(trained_trials(ref.stdout.splitlines()))
    assert total == 12  # 2 batch sizes x 2 sparsities x 3 trials, all trained once

    results = tmp_path / "killed" / "results"
    trained, stored_at_start, printed = [], [], []
    for kill in ({"after_seconds": 4.0}, {"after_trials": 1}, {"after_trials": 6}):
        rc, lines = run_until_killed(results, **kill)
        assert rc == -signal.SIGKILL, (kill, "".join(lines)[-3000:])
        stored_at_start.append(already_stored(lines))
        printed.append(len(trained_trials(lines)))
        trained += trained_trials(lines)
    final = subprocess.run(command(results), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    stored_at_start.append(already_stored(final.stdout.splitlines()))
    trained += trained_trials(final.stdout.splitlines())
    assert len(trained) == len(set(trained)), sorted(trained)  # none trained twice
    # A trial is stored before its line is printed, so a kill between the two leaves a stored
    # trial no run printed: the next run counts it as stored and reuses it. Each killed run
    # stored what it printed plus at most one such trial per worker, never fewer.
    for k, n in enumerate(printed):
        assert 0 <= stored_at_start[k + 1] - stored_at_start[k] - n <= 2, (stored_at_start, printed)
    assert stored_at_start[-1] + len(trained_trials(final.stdout.splitlines())) == total  # none lost
    assert re.search(r"reused ([1-9]\d*) stored trials", final.stdout)

    # One worker process or two: every trial computes on one thread, so the same bits.
    serial = subprocess.run(command(tmp_path / "serial" / "results", workers=1), cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert serial.returncode == 0 and "warning" not in serial.stdout, serial.stdout[-3000:] + serial.stderr[-3000:]
    for other in (results, tmp_path / "serial" / "results"):
        with xr.open_dataset(tmp_path / "reference" / "results" / "resume-test.full.nc") as a, \
                xr.open_dataset(other / "resume-test.full.nc") as b:
            for key in KEYS:
                np.testing.assert_array_equal(a[key].values, b[key].values, err_msg=f"{other}: {key}")
            assert (a["status"].values > 0).all()
