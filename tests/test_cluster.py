"""Loopback test of multi-machine search: a chief and two workers on 127.0.0.1 (REAL MNIST,
tiny grid) against a single-process run of the same spec.

One worker is killed (SIGKILL) mid-trial. Its trial goes back to the queue once its heartbeat
lease (6 s here) runs out and the other worker trains it. Checks: the chief's dataset equals
`repro run --no-capping` of the same spec (the distributed search runs every trial to its own
outcome), no trial is trained twice, the killed worker's trial is not lost.
"""
import os
import pathlib
import re
import signal
import socket
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
id = "cluster-test"
title = "chief and workers on loopback (tiny real MNIST grid)"
seed = 5

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
sparsities = [0.0]
trials = 4
max_steps = 160
eval_every = 8
"""
DONE = re.compile(r"^(worker-\w+): \((\w+)\) B=(\d+) s=([\d.]+) trial (\d+): (\w+).*?s( stored)?$")
KEYS = ("steps_to_result", "best_trial", "status", "steps", "learning_rate", "momentum",
        "val_error", "eval_step")

pytestmark = pytest.mark.skipif(not data_mod.cache_path("mnist").exists(),
                                reason="MNIST not fetched (make data)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, env):
    proc = subprocess.Popen([sys.executable, "-m", "repro", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


def test_chief_and_two_workers_equal_a_single_process_run_and_survive_a_killed_worker(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    env = dict(os.environ, PYTHONUNBUFFERED="1", REPRO_LEASE_S="6", TF_CPP_MIN_LOG_LEVEL="2")
    ref = subprocess.run([sys.executable, "-m", "repro", "run", str(spec), "--grid", "full",
                          "--results", str(tmp_path / "single"), "--no-capping", "--sobol-order",
                          "--workers", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]

    port = str(free_port())
    shared = ["--grid", "full", "--results", str(tmp_path / "cluster"), "--port", port]
    chief, chief_out = start(["chief", str(spec), *shared], env)
    time.sleep(3)
    a, a_out = start(["worker", str(spec), *shared, "--tuner-id", "worker-a", "--threads", "1"], env)
    b, b_out = start(["worker", str(spec), *shared, "--tuner-id", "worker-b", "--threads", "1"], env)
    deadline = time.monotonic() + 600
    while not any(DONE.match(line.strip()) for line in list(a_out)):  # a has finished one trial...
        assert a.poll() is None and time.monotonic() < deadline, "".join(a_out)[-3000:]
        time.sleep(0.05)
    time.sleep(1.0)  # ... and is inside its next one
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    assert b.wait(timeout=600) == 0, "".join(b_out)[-3000:]
    assert chief.wait(timeout=300) == 0, "".join(chief_out)[-3000:]

    done = [DONE.match(line.strip()) for line in a_out + b_out]
    trained = [m.group(2, 3, 4, 5) for m in done if m and not m.group(7)]
    assert len(trained) == len(set(trained)) == 8, trained  # all 8 trials, none twice
    assert any("goes back to the queue" in line for line in chief_out), "".join(chief_out)

    with xr.open_dataset(tmp_path / "single" / "cluster-test.full.nc") as want, \
            xr.open_dataset(tmp_path / "cluster" / "cluster-test.full.nc") as got:
        for key in KEYS:
            np.testing.assert_array_equal(want[key].values, got[key].values, err_msg=key)


def test_worker_failure_message_is_kept_beside_the_records(tmp_path):
    import json
    from repro import cluster
    try:
        raise MemoryError("OOM while allocating 4 GiB for B=16384")
    except MemoryError as e:
        path = cluster.record_failure(tmp_path, "abc123", "worker-a", e)
    d = json.loads(path.read_text())
    assert path == tmp_path / "failures" / "abc123.json"
    assert d["worker"] == "worker-a" and d["message"] == "MemoryError: OOM while allocating 4 GiB for B=16384"
    assert "Traceback" in d["traceback"] and "record_failure" not in d["message"]
    assert not (tmp_path / "runs").exists()  # no record: the trial is trained again later


def test_plan_oracle_maps_every_plan_trial_once():
    from repro import cluster, plan as plan_mod, spec as spec_mod
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "spec.toml"
        path.write_text(SPEC)
        plan = plan_mod.compile_plan(spec_mod.load_spec(path), "full")
    seen = [cluster.locate(plan, t) for t in range(cluster.total_trials(plan))]
    keys = [(pp.panel.id, s, b, i) for pp, s, b, i in seen]
    assert len(keys) == len(set(keys)) == 8
    with pytest.raises(IndexError):
        cluster.locate(plan, 8)


def test_a_worker_killed_between_trials_does_not_keep_the_chief_waiting(tmp_path):
    """The oracle alone, no gRPC: worker a ends a trial and dies before asking for another, so
    it holds no trial and no lease ever frees it; worker b runs the rest. When b is told
    STOPPED, no tuner id may be left, or keras-tuner's chief (exit_chief) waits forever."""
    from keras_tuner.src.distribute.oracle_chief import exit_chief
    from keras_tuner.src.engine import trial as trial_module
    from repro import cluster, plan as plan_mod, spec as spec_mod
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    plan = plan_mod.compile_plan(spec_mod.load_spec(path), "full")
    oracle = cluster.PlanOracle(plan)
    oracle._set_project_dir(str(tmp_path / "tuner"), "cluster-test")

    def finish(trial):
        trial.status = trial_module.TrialStatus.COMPLETED
        oracle.update_trial(trial.trial_id, {"steps_to_result": 8.0})
        oracle.end_trial(trial)

    finish(oracle.create_trial("worker-a"))  # ... and worker-a is killed here
    while (trial := oracle.create_trial("worker-b")).status == trial_module.TrialStatus.RUNNING:
        finish(trial)
    assert trial.status == trial_module.TrialStatus.STOPPED
    assert len(oracle.trials) == 8 and exit_chief(oracle)
