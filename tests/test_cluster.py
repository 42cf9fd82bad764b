"""Loopback test of multi-machine search: a chief and two workers on 127.0.0.1 against a
single-process `repro run` of the same spec, on SYNTHETIC MNIST-shaped data (conftest's
`synthetic_mnist`: noise images with a faint patch whose quadrant is the label, written as
`mnist.npz` in a temporary REPRO_DATA folder), so nothing real is read and trials differ in their K.

Workers take whole study points and race them with capping, as `repro run` does. One worker is
killed (SIGKILL) while it races a point; that point goes back to the queue once the worker's
heartbeat lease (6 s here) runs out, and the other worker races it again (re-reading whatever
records of its trials were stored before the kill). Checks: the chief's dataset has the K* and
best trial of `repro run`, and the status and steps of every trial neither run capped; no
trial is trained twice; the killed worker's point is not lost. The oracle is also tested alone
(no gRPC).
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

from repro import store as store_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = """\
[figure]
id = "cluster-test"
title = "chief and workers on loopback (synthetic MNIST-shaped data)"
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
batch_sizes = [16, 32, 64, 128]
sparsities = [0.0]
trials = 4
max_steps = 160
eval_every = 8
"""
# worker-a: (a) B=32 s=0 seed=5 trial 1: capped 47 steps 2.1s stored
EVENT = re.compile(r"^(worker-\w+): \((\w+)\) B=(\d+) s=([\d.]+) seed=(\d+) trial (\d+): "
                   r"(\w+) .*s( stored)?$")
CAPPED = store_mod.STATUS["capped"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-tuner internals


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start():
    """start(args, env) -> (process, its output lines so far) of `python -m repro *args`; every
    process still running when the test ends is killed."""
    procs = []

    def launch(args, env):
        proc = subprocess.Popen([sys.executable, "-m", "repro", *args], cwd=ROOT, env=env,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        lines = []
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
        return proc, lines

    yield launch
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def events(lines):
    """[(worker, panel, B, s, seed, trial, status, stored)] of the trial lines among `lines`."""
    return [m.groups() for m in map(EVENT.match, (line.strip() for line in lines)) if m]


def test_chief_and_two_workers_equal_a_single_process_run_and_survive_a_killed_worker(
        tmp_path, synthetic_mnist, start):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    env = dict(os.environ, PYTHONUNBUFFERED="1", REPRO_LEASE_S="6", TF_CPP_MIN_LOG_LEVEL="2",
               REPRO_DATA=str(synthetic_mnist))
    ref = subprocess.run([sys.executable, "-m", "repro", "run", str(spec), "--grid", "full",
                          "--results", str(tmp_path / "single"), "--workers", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]

    port = str(free_port())
    shared = ["--grid", "full", "--results", str(tmp_path / "cluster"), "--port", port]
    chief, chief_out = start(["chief", str(spec), *shared], env)
    a, a_out = start(["worker", str(spec), *shared, "--tuner-id", "worker-a", "--threads", "1"], env)
    b, b_out = start(["worker", str(spec), *shared, "--tuner-id", "worker-b", "--threads", "1"], env)
    deadline = time.monotonic() + 600
    while not events(list(a_out)):  # a has stored a trial of its first point ...
        assert a.poll() is None and time.monotonic() < deadline, "".join(a_out)[-3000:]
        time.sleep(0.05)
    time.sleep(1.0)  # ... and races that point still, or the next one (4 points, 2 workers)
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    assert b.wait(timeout=600) == 0, "".join(b_out)[-3000:]
    assert chief.wait(timeout=120) == 0, "".join(chief_out)[-3000:]
    assert any("goes back to the queue" in line for line in chief_out), "".join(chief_out)

    seen = events(a_out + b_out)
    trained = [e[1:6] for e in seen if not e[7]]
    assert len(trained) == len(set(trained)), trained  # no trial trained twice
    assert {e[1:6] for e in seen} >= {("a", str(b), "0", "5", str(i))  # every trial has a record
                                      for b in (16, 32, 64, 128) for i in range(4)}

    with xr.open_dataset(tmp_path / "single" / "cluster-test.full.nc") as want, \
            xr.open_dataset(tmp_path / "cluster" / "cluster-test.full.nc") as got:
        assert got.attrs["capping"] == want.attrs["capping"] == 1
        for key in ("steps_to_result", "best_trial", "learning_rate", "momentum"):
            np.testing.assert_array_equal(want[key].values, got[key].values, err_msg=key)
        assert (want["status"].values == CAPPED).any()  # capping did act on this grid
        uncapped = (want["status"].values != CAPPED) & (got["status"].values != CAPPED)
        for key in ("status", "steps"):
            np.testing.assert_array_equal(want[key].values[uncapped], got[key].values[uncapped],
                                          err_msg=key)


def test_worker_failure_message_is_kept_beside_the_records(tmp_path):
    import json
    from repro import cluster
    try:
        raise MemoryError("OOM while allocating 4 GiB for B=16384")
    except MemoryError as e:
        path = cluster.record_failure(tmp_path, "a-s0-B16384-seed5", "worker-a", e)
    d = json.loads(path.read_text())
    assert path == tmp_path / "failures" / "a-s0-B16384-seed5.json"
    assert d["worker"] == "worker-a" and d["message"] == "MemoryError: OOM while allocating 4 GiB for B=16384"
    assert "Traceback" in d["traceback"] and "record_failure" not in d["message"]
    assert not (tmp_path / "runs").exists()  # no record: the point's trials race again later


# ------------------------------------------------------------------------ the oracle alone
def compiled(tmp_path, text=SPEC):
    from repro import plan as plan_mod, spec as spec_mod
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return plan_mod.compile_plan(spec_mod.load_spec(path), "full")


def chief_oracle(tmp_path, plan, **kwargs):
    """A PlanOracle in its project folder, as `cluster.serve` sets it up (without the server)."""
    from keras_tuner.engine import base_tuner
    from repro import cluster
    oracle = cluster.PlanOracle(plan, log=lambda line: None, **kwargs)
    base_tuner.BaseTuner(oracle, directory=str(tmp_path / "tuner"), project_name="cluster-test")
    oracle.verbose = 0
    return oracle


def finish(oracle, trial, k=8.0):
    """What a worker's tuner does once its point's race is over."""
    from keras_tuner.engine.trial import TrialStatus
    oracle.update_trial(trial.trial_id, {"steps_to_result": k})
    trial.status = TrialStatus.COMPLETED
    oracle.end_trial(trial)


def test_the_chief_serves_every_study_point_once_then_idle_then_stopped(tmp_path):
    from keras_tuner.engine.trial import TrialStatus
    from repro import plan as plan_mod
    plan = compiled(tmp_path)
    oracle = chief_oracle(tmp_path, plan)
    held = [oracle.create_trial(f"worker-{i}") for i in range(4)]
    assert [oracle.points[i].batch_size for i in range(4)] == [16, 32, 64, 128]
    # costliest (largest batch) first, as `repro run` starts them
    assert [t.hyperparameters.values["point"] for t in held] == [3, 2, 1, 0]
    assert oracle.points == plan_mod.study_points(plan)
    for t in held[:3]:
        finish(oracle, t)
    assert oracle.create_trial("worker-0").status == TrialStatus.IDLE  # worker-3 still races
    finish(oracle, held[3])
    assert oracle.create_trial("worker-0").status == TrialStatus.STOPPED
    assert oracle.failed_points() == []


def test_the_chief_serves_its_plan_and_capping_as_fixed_terms(tmp_path):
    import keras_tuner
    from repro import cluster
    from repro.errors import UsageError
    plan = compiled(tmp_path)
    for capping in (True, False):  # as a worker receives it: through the gRPC message
        space = chief_oracle(tmp_path, plan, capping=capping).get_space()
        space = keras_tuner.HyperParameters.from_proto(space.to_proto())
        assert cluster.accept_terms(plan, space) is capping
    other = compiled(tmp_path, SPEC.replace("trials = 4", "trials = 3"))
    with pytest.raises(UsageError, match="the chief serves plan"):
        cluster.accept_terms(other, space)


def test_a_silent_workers_point_goes_back_to_the_queue(tmp_path):
    """worker-a stops beating: once its lease is over, the next request ends its trial as
    FAILED and serves its point again, before any other, as a new trial."""
    from keras_tuner.engine.trial import TrialStatus
    from repro import cluster
    oracle = chief_oracle(tmp_path, compiled(tmp_path), lease_s=0.05)
    lost = oracle.create_trial("worker-a")
    kept = oracle.create_trial("worker-b")
    time.sleep(0.1)
    oracle.update_trial(kept.trial_id, {cluster.HEARTBEAT: 1.0})  # worker-b is alive
    again = oracle.create_trial("worker-c")
    assert again.hyperparameters.values["point"] == lost.hyperparameters.values["point"] == 3
    assert again.trial_id != lost.trial_id
    assert oracle.get_trial(lost.trial_id).status == TrialStatus.FAILED
    assert "worker-a" not in oracle.ongoing_trials
    assert oracle.create_trial("worker-b").trial_id == kept.trial_id
    for t in (again, kept):
        finish(oracle, t)
    assert oracle.create_trial("worker-d").hyperparameters.values["point"] == 1


def test_a_worker_killed_between_points_does_not_keep_the_chief_waiting(tmp_path):
    """worker-a ends a point and dies before asking for another, so it holds none and no
    lease ever frees it; worker-b races the rest. When b is told STOPPED, no tuner id may be
    left, or keras-tuner's chief (exit_chief) waits forever."""
    from keras_tuner.engine.trial import TrialStatus
    from keras_tuner.src.distribute.oracle_chief import exit_chief  # keras-tuner's own condition
    oracle = chief_oracle(tmp_path, compiled(tmp_path))
    finish(oracle, oracle.create_trial("worker-a"))  # ... and worker-a is killed here
    while (trial := oracle.create_trial("worker-b")).status == TrialStatus.RUNNING:
        finish(oracle, trial)
    assert trial.status == TrialStatus.STOPPED
    assert len(oracle.trials) == 4 and exit_chief(oracle)
    assert oracle.create_trial("worker-a").status == TrialStatus.STOPPED  # had it been alive


def test_a_point_failed_on_its_worker_is_reported_not_served_again(tmp_path):
    from keras_tuner.engine.trial import TrialStatus
    oracle = chief_oracle(tmp_path, compiled(tmp_path))
    broken = oracle.create_trial("worker-a")
    broken.status, broken.message = TrialStatus.FAILED, "MemoryError"
    oracle.end_trial(broken)
    while (trial := oracle.create_trial("worker-a")).status == TrialStatus.RUNNING:
        finish(oracle, trial)
    assert trial.status == TrialStatus.STOPPED
    assert oracle.failed_points() == [oracle.points[3]]


def test_replicate_searches_are_points_of_their_own(tmp_path):
    """A grid with `seeds` = 2 serves each (sparsity, B) twice, once per replicate seed."""
    from repro import plan as plan_mod
    plan = compiled(tmp_path, SPEC.replace("trials = 4", "trials = 4\nseeds = 2"))
    oracle = chief_oracle(tmp_path, plan)
    seeds = [oracle.points[oracle.create_trial(f"w{i}").hyperparameters.values["point"]].spec.seed
             for i in range(8)]
    assert sorted(seeds) == [5] * 4 + [5 + plan_mod.REPLICATE_SEED_STRIDE] * 4
