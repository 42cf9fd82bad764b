"""Race checkpoints (repro.checkpoint, run.run_point) and point leases (repro.lease), in process.

Trials train for real through the engine on the SYNTHETIC dataset of conftest.py (as in
tests/test_run.py). A race is "killed" by an exception raised from its progress report after
n rounds (the checkpoint of that round is on disk by then), then resumed: the resumed race must
train only the rounds after the checkpoint and store records equal, bit for bit, to those of a
race never killed. Real kill -9 / SIGTERM of real processes: tests/test_interrupt.py.
"""
import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from repro import checkpoint as checkpoint_mod
from repro import data as data_mod
from repro import lease as lease_mod
from repro import plan as plan_mod
from repro import progress as progress_mod
from repro import records as records_mod
from repro import run
from repro import store as store_mod
from conftest import make_data
from test_run import plan_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    data = make_data(n_train=64, n_val=3000)
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})


class Killed(Exception):
    pass


def racing(point, results, kill_after=None, **options):
    """run_point on `point`; ([RaceRound], [TrialEvent]) it reported; raises Killed after
    `kill_after` rounds."""
    rounds, trials = [], []

    def report(e):
        if isinstance(e, progress_mod.RaceRound):
            rounds.append(e)
            if kill_after is not None and len(rounds) >= kill_after:
                raise Killed
        else:
            trials.append(e)
    opts = run.RunOptions(results_dir=str(results), **{"checkpoint_every": 0, **options})
    try:
        run.run_point(point, opts, report, log=lambda line: None)
    except Killed:
        pass
    return rounds, trials


def records(point, results):
    """Every stored record of the point, as JSON without its wall time."""
    out = []
    for rec in records_mod.stored_records(point, str(results)):
        d = rec.to_json() if rec is not None else None
        if d is not None:
            d.pop("wall_time")
        out.append(d)
    return out


def the_point(tmp_path):
    """One study point whose race lasts 10 rounds: trial 5 meets the goal at step 40 of 64."""
    return plan_mod.study_points(plan_for(tmp_path, batch_sizes=(8,), lr_min=5e-5, lr_max=7e-4))[0]


@pytest.mark.parametrize("kill_after", [3, 7])
def test_a_race_killed_after_n_rounds_resumes_from_its_checkpoint_bit_for_bit(tmp_path, kill_after):
    point = the_point(tmp_path)
    ref_rounds, _ = racing(point, tmp_path / "ref")
    assert len(ref_rounds) > kill_after + 1  # the race outlives the kill
    rounds, trained = racing(point, tmp_path / "killed", kill_after=kill_after)
    ckpt = checkpoint_mod.RaceCheckpoint(tmp_path / "killed", run.point_name(point))
    assert ckpt.path.exists()
    meta, states = ckpt.load()
    assert meta["step"] == rounds[-1].step and sorted(states) == meta["live"]

    resumed, _ = racing(point, tmp_path / "killed")
    # only the rounds after the checkpoint are trained again: none of the first kill_after
    assert [r.step for r in resumed] == [r.step for r in ref_rounds[kill_after:]]
    assert [r.live for r in resumed] == [r.live for r in ref_rounds[kill_after:]]
    assert records(point, tmp_path / "killed") == records(point, tmp_path / "ref")
    assert all(r is not None for r in records(point, tmp_path / "ref"))
    assert not ckpt.path.exists()  # removed once the records are written


def test_checkpoints_are_written_only_every_checkpoint_every_seconds(tmp_path, monkeypatch):
    point = the_point(tmp_path)
    saves = []
    real = checkpoint_mod.RaceCheckpoint.save
    monkeypatch.setattr(checkpoint_mod.RaceCheckpoint, "save",
                        lambda self, meta, runs: saves.append(meta["step"]) or real(self, meta, runs))
    rounds, _ = racing(point, tmp_path / "never", checkpoint_every=3600)
    assert rounds and saves == []
    racing(point, tmp_path / "always", checkpoint_every=0)
    assert len(saves) == len([r for r in rounds if r.live])


def test_a_checkpoint_of_another_race_is_discarded_and_the_point_races_from_step_0(tmp_path):
    point = the_point(tmp_path)
    ref_rounds, _ = racing(point, tmp_path / "ref")
    racing(point, tmp_path / "r", kill_after=3)  # capped race: its checkpoint says capping
    lines = []
    rounds = []
    run.run_point(point, run.RunOptions(results_dir=str(tmp_path / "r"), capping=False,
                                        checkpoint_every=None),
                  lambda e: rounds.append(e) if isinstance(e, progress_mod.RaceRound) else None,
                  log=lines.append)
    assert any("of another race" in line for line in lines), lines
    assert rounds[0].step == point.eval_steps[0]


def test_an_unreadable_checkpoint_names_its_file(tmp_path):
    point = the_point(tmp_path)
    ckpt = checkpoint_mod.RaceCheckpoint(tmp_path, run.point_name(point))
    ckpt.path.parent.mkdir(parents=True)
    ckpt.path.write_bytes(b"not a checkpoint")
    with pytest.raises(run.UsageError, match=str(ckpt.path)):
        run.run_point(point, run.RunOptions(results_dir=str(tmp_path)))


# ------------------------------------------------------------------------ leases
def test_a_lease_is_taken_once_and_given_back(tmp_path):
    a, b = lease_mod.Lease(tmp_path, "p"), lease_mod.Lease(tmp_path, "p")
    assert a.acquire() and not b.acquire()
    assert json.loads(a.path.read_text())["pid"] == os.getpid()
    a.release()
    assert not a.path.exists() and b.acquire()
    b.release()


def test_a_dead_owners_lease_is_taken_over_at_once_and_a_silent_one_after_lease_s(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = lease_mod.Lease(tmp_path, "p", lease_s=3600)
    lease.path.parent.mkdir(parents=True)
    lease.path.write_text(json.dumps({**lease.owner, "pid": dead.pid, "start": None}))
    assert lease.stale() and lease.acquire()  # its owner ran here and is gone
    lease.release()
    other_host = lease_mod.Lease(tmp_path, "q", lease_s=0.5)
    other_host.path.write_text(json.dumps({**other_host.owner, "host": "elsewhere"}))
    assert not other_host.acquire()  # touched just now: alive
    time.sleep(0.7)
    assert other_host.acquire()  # silent for longer than its lease
    other_host.release()


def test_a_live_lease_stolen_by_a_late_takeover_is_put_back(tmp_path):
    live = lease_mod.Lease(tmp_path, "p")
    assert live.acquire()
    thief = lease_mod.Lease(tmp_path, "p")
    thief._break_stale()  # as if it had judged the lease stale a moment before `live` renewed it
    assert live.mine()
    live.release()


def test_a_point_another_run_holds_waits_and_is_then_reused_not_trained(tmp_path, monkeypatch):
    point = the_point(tmp_path)
    options = run.RunOptions(results_dir=str(tmp_path), checkpoint_every=None)
    other = lease_mod.Lease(tmp_path, run.point_name(point))
    assert other.acquire()
    assert run.claim_point(point, options, wait=False) == run.BUSY
    run.run_point(point, options)  # the holder races it ...
    monkeypatch.setattr(run, "LEASE_POLL_S", 0.05)
    events, lines = [], []
    import threading
    threading.Timer(0.5, other.release).start()  # ... and gives it back
    run.claim_point(point, options, events.append, wait=True, log=lines.append)
    assert any("raced by another run" in line for line in lines)
    trials = [e for e in events if isinstance(e, progress_mod.TrialEvent)]
    assert len(trials) == point.trials and all(e.reused for e in trials)
    assert not other.path.exists()


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_a_bad_checkpoint_every_is_a_usage_error(value, capsys):
    from repro.__main__ import main
    assert main(["run", "specs/figure-1.toml", "--checkpoint-every", value]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-every" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------ signals (cheap, no TF)
def test_sigterm_and_sigint_raise_interrupted_with_their_exit_status():
    from repro import interrupt
    import signal
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        old = interrupt.install()
        try:
            with pytest.raises(interrupt.Interrupted) as e:
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler raises here at once
            assert e.value.exit_code == code
        finally:
            interrupt.restore(old)
    assert signal.getsignal(signal.SIGTERM) == old[signal.SIGTERM]


CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from repro import interrupt
{disable}
interrupt.die_with_parent(int(sys.argv[1]), poll_s=0.2)
print(os.getpid(), flush=True)
time.sleep(120)
"""
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {child!r}, str(__import__("os").getpid())],
                         stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("how", ["prctl", "parent watch"])
def test_a_worker_dies_with_its_parent_when_the_parent_is_killed(how):
    import pathlib
    import signal
    root = str(pathlib.Path(run.__file__).parents[1])
    # "parent watch": the portable fallback alone (as on a system without prctl)
    disable = "sys.platform = 'darwin'" if how == "parent watch" else ""
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(
        child=CHILD.format(root=root, disable=disable))], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    t0 = time.monotonic()

    def running():
        try:
            return pathlib.Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    while running():
        assert time.monotonic() - t0 < 5, f"{how}: the child outlived its parent"
        time.sleep(0.02)
