"""Tests of the JAX engine (repro.engine_jax) and of racing on it: a trial computes the same
bits alone and in any slot of a vmapped race, a raced point equals its trials run alone one by
one (K*, best trial, statuses, steps), a race resumed from its checkpoint equals one never
stopped, and none of it needs TensorFlow.

Keras picks its backend once per process, so these tests run in a process of their own with
KERAS_BACKEND=jax and TensorFlow made unimportable (`sys.modules["tensorflow"] = None`): in the
ordinary (TensorFlow) test run, the one test here starts that process and passes when every
test in it passes. `KERAS_BACKEND=jax pytest tests/test_engine_jax.py` runs them directly.
They skip, saying why, where jax is not installed (pip install -e '.[jax]'; `make venv` does).

SYNTHETIC data (conftest.py: noise with a bright patch in the label's quadrant), small enough
for the CPU; the JAX engine's vmapped convolutions are slow on XLA's CPU kernels.
"""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed: pip install -e '.[jax]' (make venv installs it)")

from conftest import SyntheticData, make_data  # noqa: E402

UNDER_JAX = os.environ.get("KERAS_BACKEND") == "jax"
ROOT = pathlib.Path(__file__).resolve().parent.parent

if not UNDER_JAX:
    @pytest.mark.slow
    def test_the_jax_engine_tests_pass_under_keras_backend_jax_without_tensorflow():
        """Run this file's tests in a fresh process on the JAX backend, TensorFlow unimportable."""
        code = ("import sys; sys.modules['tensorflow'] = None; import pytest; "
                f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {str(pathlib.Path(__file__))!r}]))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=1800)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        assert " passed" in out and "skipped" not in out and "failed" not in out, out[-3000:]

    SAME_TRIAL = """
import sys
sys.modules["tensorflow"] = None
sys.path.insert(0, {tests!r})
import numpy as np
from conftest import make_data
from repro import engine_jax, models, pruning
data = make_data(n_train=64, n_val=200)
eng = engine_jax.Engine(data, "simple_cnn", "nesterov", "linear_decay", slots=1)
init = models.initial_weights(eng.model, 3)
scores = pruning.connection_sensitivity(eng.model, init, data.x_train, data.y_train, chunk=20)
run = eng.start_trial(order=engine_jax.DataOrder(64, 0), batch_size=16, init=init,
                      mask=pruning.masks_from_scores(scores, 0.5), hp={hp!r}, goal=-1.0, early_exit=False)
for s in (1, 8, 24):
    run.advance(s)
np.savez({out!r}, *init, *scores, *run.state.arrays()[:6], errors=[e for _, e, _ in run.curve])
"""

    def test_the_jax_engine_trains_what_the_tensorflow_engine_trains(tmp_path):
        """The same trial (initial weights, SNIP scores and mask, Nesterov with linear decay,
        evaluations) on both engines: the same initial bits, scores and weights equal to float
        rounding, the same validation errors. JAX's side runs in a process of its own."""
        from repro import engine, models, pruning
        hp = {"learning_rate": 0.01, "momentum": 0.9, "decay_steps": 20.0, "end_factor": 0.1}
        out = tmp_path / "jax.npz"
        code = SAME_TRIAL.format(tests=str(ROOT / "tests"), hp=hp, out=str(out))
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=900)
        assert proc.returncode == 0, proc.stderr[-4000:]
        data = make_data(n_train=64, n_val=200)
        eng = engine.Engine(data, "simple_cnn", "nesterov", "linear_decay")
        init = models.initial_weights(eng.model, 3)
        scores = pruning.connection_sensitivity(eng.model, init, data.x_train, data.y_train, chunk=20)
        result = eng.run_trial(order=engine.DataOrder(64, 0), batch_size=16, init=init,
                               mask=pruning.masks_from_scores(scores, 0.5), hp=hp,
                               eval_steps=[1, 8, 24], goal=-1.0, early_exit=False)  # never met
        with np.load(out) as z:
            got = [z[f"arr_{k}"] for k in range(3 * len(init))]
            errors = list(z["errors"])
        n = len(init)
        for mine, theirs in zip(init, got[:n]):
            np.testing.assert_array_equal(mine, theirs)  # repro.philox: TensorFlow's bits
        for mine, theirs in zip(scores, got[n:2 * n]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-9)
        for w, theirs in zip(eng.weights, got[2 * n:]):
            np.testing.assert_allclose(w.numpy(), theirs, rtol=1e-3, atol=2e-5)
        assert result.val_errors == errors and max(errors) > min(errors)  # it learned
else:
    from repro import checkpoint, engine_jax, models, race, run  # noqa: E402
    from repro import data as data_mod  # noqa: E402
    from repro import plan as plan_mod  # noqa: E402
    from repro import spec as spec_mod  # noqa: E402

    DATA = dict(n_train=64, n_val=400)  # 2 evaluation chunks of 200: early exit can act
    HPS = [{"learning_rate": lr, "momentum": 0.9, "decay_steps": 40.0, "end_factor": 0.01}
           for lr in (1e-4, 3e-3, 1e-3, 1e6, 3e-2)]  # 1e6: diverges

    @pytest.fixture(scope="module")
    def eng():
        """Nesterov with linear decay (every metaparameter matters), 3 slots: 5 trials take
        two calls per round, and a trial lands in different slots alone and raced."""
        return engine_jax.Engine(make_data(**DATA), "simple_cnn", "nesterov", "linear_decay", slots=3)

    def start(eng, i, **kw):
        return eng.start_trial(order=engine_jax.DataOrder(64, 0), batch_size=8,
                               init=models.initial_weights(eng.model, i), mask=None, hp=HPS[i],
                               goal=0.0, exit_goal=0.3, **kw)

    def outcome(run):
        r = run.result(wall_time=0.0)
        return (r.status, r.steps, r.eval_steps, r.val_errors, r.val_exact, r.examples_evaluated,
                r.message)

    def assert_same_state(a, b):
        for x, y in zip(a.state.arrays(), b.state.arrays()):
            np.testing.assert_array_equal(x, y)

    def test_a_trial_computes_the_same_bits_alone_and_in_any_slot_of_a_race(eng):
        """Weights, velocities, validation margins and curves bit for bit, with a diverging
        trial's non-finite weights in another slot of the same calls."""
        evals = list(range(4, 25, 4))
        alone = []
        for i in range(len(HPS)):
            r = start(eng, i)
            for s in evals:
                if r.advance(s):
                    break
            alone.append(r)
        runs = {i: start(eng, i, keep_state=True) for i in range(len(HPS))}
        out, _ = race.race(runs, evals, 24, capping=False)
        assert outcome(alone[3])[0] == "infeasible" and outcome(alone[3])[1] < 24
        assert any(not all(outcome(a)[4]) for a in alone)  # early exit (order-dependent bounds) acted
        assert {outcome(a)[0] for a in alone} >= {"complete", "infeasible"}
        for i in range(len(HPS)):
            assert outcome(alone[i]) == outcome(runs[i])
            assert out[i][0].val_errors == outcome(alone[i])[3]
            if i != 3:
                assert_same_state(alone[i], runs[i])

    def test_a_trial_resumed_from_a_race_checkpoint_continues_bit_for_bit(eng, tmp_path):
        whole = start(eng, 2, keep_state=True)
        halves = {0: start(eng, 0, keep_state=True), 2: start(eng, 2, keep_state=True)}
        for s in (4, 8):
            whole.advance(s)
            race._prefetch(halves, s, lambda i, s: False, {0: 0.0, 2: 0.0})
            for r in halves.values():
                r.advance(s)
        ckpt = checkpoint.RaceCheckpoint(tmp_path, "point")
        ckpt.save({"step": 8}, halves)
        _, saved = ckpt.load()
        resumed = start(eng, 2, keep_state=True)
        resumed.restore(*saved[2])
        for s in (12, 16, 20):
            whole.advance(s)
            resumed.advance(s)
        assert outcome(whole)[:6] == outcome(resumed)[:6]
        assert_same_state(whole, resumed)

    SPEC = """\
[figure]
id = "figure-jax-race-test"
title = "synthetic race on the JAX engine"
seed = 0

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.05

[panel.search]
learning_rate = { min = 1e-3, max = 0.03, scale = "log" }
momentum = { min = 0.9, max = 0.99, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [8]
sparsities = [0.0, 0.5]
trials = 6
max_steps = 48
eval_every = 4
"""

    @pytest.fixture()
    def plan(tmp_path, monkeypatch):
        """The spec's plan on SYNTHETIC data; the engine has 2 slots (a round of 6 trials is 3
        calls, and a trial alone computes 2 slots, not 6: cheaper on the CPU)."""
        monkeypatch.setattr(engine_jax.backend, "JAX_SLOTS", 2)
        data = faint_data()
        monkeypatch.setattr(data_mod, "load", lambda name: data)
        monkeypatch.setattr(data_mod, "require", lambda name: None)
        monkeypatch.setattr(run, "_WORKLOADS", {})
        (tmp_path / "spec.toml").write_text(SPEC)
        return plan_mod.compile_plan(spec_mod.load_spec(tmp_path / "spec.toml"), "full")

    def faint_data(n_train=256, n_val=400):
        """SYNTHETIC images as conftest.make_images but noise 1.0 and a patch of 0.7: trials at
        good learning rates need a few dozen steps, others do not get there in the budget."""
        def images(n, seed):
            rng = np.random.default_rng(seed)
            y = (np.arange(n) % 4).astype(np.int32)
            rng.shuffle(y)
            x = rng.normal(0.0, 1.0, size=(n, 28, 28, 1)).astype(np.float32)
            for i, label in enumerate(y):
                r, c = divmod(int(label), 2)
                x[i, 3 + 14 * r:10 + 14 * r, 3 + 14 * c:10 + 14 * c, 0] += 0.7
            return x, y
        return SyntheticData(*images(n_train, 0), *images(n_val, 1))

    def sequential(plan, results_dir):
        """Each point's search done the plain way: trial after trial in Sobol order, each
        trained alone (Engine.run_trial: one slot of its own), capped by the best so far.
        {(sparsity, B): (best (K, trial) or None, [TrialResult])}."""
        out = {}
        for point in plan_mod.study_points(plan):
            w = run.workload(point.panel, results_dir)
            finished, results = [], []
            for i, values in enumerate(point.trial_values()):
                cap = race.cap_for(finished, i, True, point.max_steps, point.finishers)
                init = models.initial_weights(w.engine.model, point.spec.seed + i)
                res = w.engine.run_trial(
                    order=w.order_for(point.spec.seed), batch_size=point.batch_size, init=init,
                    mask=w.mask(point.spec.seed + i, init, point.sparsity), hp=values,
                    eval_steps=point.eval_steps, goal=point.goal,
                    max_steps=point.max_steps if cap is None else cap)
                results.append(res)
                if res.status == "complete":
                    finished = sorted(finished + [(res.steps_to_result, i)])
            out[(point.sparsity, point.batch_size)] = (finished[0] if finished else None, results)
        return out

    def test_a_vmapped_race_equals_its_trials_run_alone_one_by_one(plan, tmp_path):
        """At a dense and a SNIP-pruned point: the race's K* and best trial are the sequential
        search's; every trial the race did not cap has the same status and steps, and every
        record's curve is the alone run's, bit for bit, as far as both go. The records say the
        JAX engine trained them, and their run ids are its own."""
        results = str(tmp_path / "race")
        ds, _ = run.run_plan(plan, run.RunOptions(results_dir=results), workers=1, log=lambda line: None)
        seq = sequential(plan, results)  # (re-uses the race's SNIP scores)
        statuses, compared = set(), 0
        for point in plan_mod.study_points(plan):
            best, alone = seq[(point.sparsity, point.batch_size)]
            at = dict(panel="a", sparsity=point.sparsity, batch_size=point.batch_size)
            assert best is not None  # the comparison means something
            assert (float(ds["steps_to_result"].sel(**at)), int(ds["best_trial"].sel(**at))) == best
            for i, record_id in enumerate(point.trial_ids()):
                rec = run.store_mod.RunStore(results).trial(record_id)
                statuses.add(rec.status)
                n = min(len(rec.val_errors), len(alone[i].val_errors))
                assert rec.val_errors[:n] == tuple(alone[i].val_errors[:n])
                compared += n
                if rec.status != "capped":
                    assert (rec.status, rec.steps) == (alone[i].status, alone[i].steps), (point.key, i)
                assert rec.trained_on["backend"] == "jax" and rec.trained_on["device"]
                assert rec.identity["engine"] == "jax"
                assert rec.identity["slots"] == engine_jax.backend.JAX_SLOTS
        assert {"complete", "capped"} <= statuses and compared >= 10  # it means something

    # ------------------------------------------------------------ a batch split over 2 devices
    # jax reads its device count once, when it starts: these run in processes of their own
    # on 2 CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=2, or
    # REPRO_LOGICAL_CPUS=2, which repro.devices turns into that flag before jax starts).
    def two_devices(script, tmp_path, **env):
        out = tmp_path / "out.json"
        code = ("import sys; sys.modules['tensorflow'] = None; "
                f"sys.path.insert(0, {str(ROOT / 'tests')!r}); OUT = {str(out)!r}\n" + script)
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "KERAS_BACKEND": "jax", **env},
                              timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
        import json
        return json.loads(out.read_text())

    SPLIT_TRIAL = """
import json
import jax
import numpy as np
from repro import devices, engine_jax, models
from test_engine_jax import faint_data
assert jax.device_count() == 2, jax.devices()
data = faint_data(n_train=64, n_val=200)
mesh = devices.mirrored(2)
assert isinstance(mesh, jax.sharding.Mesh) and dict(mesh.shape) == {"data": 2}
hps = [{"learning_rate": lr, "momentum": 0.9, "decay_steps": 20.0, "end_factor": 0.1}
       for lr in (0.01, 0.003)]
out, evals = {}, (1, 4, 8, 12, 16)
for name, strategy in (("one", None), ("two", mesh)):
    eng = engine_jax.Engine(data, "simple_cnn", "nesterov", "linear_decay", slots=2, strategy=strategy)
    runs = [eng.start_trial(order=engine_jax.DataOrder(64, 0), batch_size=16,
                            init=models.initial_weights(eng.model, 3 + i), mask=None, hp=hp,
                            goal=-1.0, early_exit=False) for i, hp in enumerate(hps)]
    for s in evals:
        if strategy is None:  # each trial alone, on one device
            for r in runs:
                r.advance(s)
        else:                 # both in one vmapped call, the batch split over the mesh
            eng.prefetch(runs, s)
            for r in runs:
                r.advance(s)
    n = len(eng.shapes)
    out[name] = [{"weights": [a.tolist() for a in r.state.arrays()[:3 * n]],
                  "steps": r.done, "errors": [e for _, e, _ in r.curve]} for r in runs]
    if strategy is not None:
        st = runs[0].state.stacked
        out["state_devices"] = len(st["w"][0].sharding.device_set)
        args = eng._placed(st, np.ones(2, bool), np.zeros((2, engine_jax.CHUNK_STEPS, 16), np.int32),
                           np.int32(1))
        out["all_reduce"] = "all-reduce" in eng._train.lower(*eng.data[:2], *args).compile().as_text()
json.dump(out, open(OUT, "w"))
"""

    def test_a_trial_split_over_two_devices_trains_what_one_device_trains(tmp_path):
        """Two trials (Nesterov, linear decay) raced in one vmapped call with each step's batch
        split over a 2-device mesh (devices.mirrored) against each alone on one device: the
        same steps and validation errors, weights and velocities equal to float rounding. The
        split is real: the states are on both devices and the step all-reduces."""
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
        out = two_devices(SPLIT_TRIAL, tmp_path, XLA_FLAGS=flags, REPRO_LOGICAL_CPUS="2")
        assert out["state_devices"] == 2 and out["all_reduce"]
        worst = 0.0
        for one, two in zip(out["one"], out["two"]):
            assert one["steps"] == two["steps"] == 16
            assert one["errors"] == two["errors"] and max(one["errors"]) > min(one["errors"])
            for a, b in zip(one["weights"], two["weights"]):
                a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
                np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
                worst = max(worst, float(np.max(np.abs(a - b))))
        print(f"largest weight difference, split over 2 devices vs one: {worst:.3g}")

    SPLIT_RACE = """
import json
import pathlib
import jax
from repro import data as data_mod
from repro import devices, engine_jax, run
from repro import plan as plan_mod
from repro import spec as spec_mod
from test_engine_jax import SPEC, faint_data
engine_jax.backend.JAX_SLOTS = 2
data = faint_data()
data_mod.load, data_mod.require = (lambda name: data), (lambda name: None)
tmp = pathlib.Path(OUT).parent
(tmp / "spec.toml").write_text(SPEC.replace("sparsities = [0.0, 0.5]", "sparsities = [0.0]"))
plan = plan_mod.compile_plan(spec_mod.load_spec(tmp / "spec.toml"), "full")
(point,) = plan_mod.study_points(plan)
out = {"placement": list(plan_mod.placement(point.batch_size, 2, 4))}
for name, max_device_batch in (("one", None), ("two", 4)):
    results = str(tmp / name)
    ds, _ = run.run_plan(plan, run.RunOptions(results_dir=results), workers=1,
                         max_device_batch=max_device_batch, log=lambda line: None)
    at = dict(panel="a", sparsity=0.0, batch_size=8)
    store = run.store_mod.RunStore(results)
    records = [store.trial(i) for i in point.trial_ids(2 if name == "two" else 1)]
    out[name] = {"k": float(ds["steps_to_result"].sel(**at)), "best": int(ds["best_trial"].sel(**at)),
                 "statuses": [r.status for r in records], "steps": [r.steps for r in records],
                 "replicas": [r.identity.get("replicas") for r in records],
                 "trained_on": [r.trained_on.get("replicas") for r in records],
                 "ids": point.trial_ids(2 if name == "two" else 1)}
# run_plan asked for the devices before jax started: REPRO_LOGICAL_CPUS became 2 jax devices
assert devices.logical_devices() == ["cpu:0", "cpu:1"] and jax.device_count() == 2
json.dump(out, open(OUT, "w"))
"""

    def test_a_point_raced_with_its_batch_split_over_two_devices_finds_what_one_device_finds(tmp_path):
        """A point whose batch (8) is above --max-device-batch (4) races on a 2-replica mesh
        (REPRO_LOGICAL_CPUS=2: 2 jax CPU devices): its K*, best trial and every trial's status and
        steps are those of the same race on one device. Its records say 2 replicas trained them,
        in their identity too, so their run ids are not the one-device ones (the bits differ);
        the results dataset reads them all the same."""
        out = two_devices(SPLIT_RACE, tmp_path, REPRO_LOGICAL_CPUS="2")
        one, two = out["one"], out["two"]
        assert out["placement"] == ["mirrored", 2]
        assert (two["k"], two["best"]) == (one["k"], one["best"])
        assert two["statuses"] == one["statuses"] and two["steps"] == one["steps"]
        assert {"complete", "capped"} <= set(one["statuses"])  # the race means something
        assert set(one["replicas"]) == set(one["trained_on"]) == {None}
        assert set(two["replicas"]) == set(two["trained_on"]) == {2}
        assert not set(one["ids"]) & set(two["ids"])

    def test_the_results_read_each_trial_s_record_of_whichever_layout_answers_the_most(plan, tmp_path):
        """A trial's records under its one-device and its 2-replica run ids: the results (and a
        race) read the one that answers the point's goal, then the tighter goal, then the longer
        run, then the one-device record; a trial with none stored reads as None."""
        from repro import records, store
        point = plan_mod.study_points(plan)[0]
        values = point.trial_values()
        runs = store.RunStore(tmp_path)
        goal = point.goal

        def put(trial, replicas, goal, errors):
            """Store a record of the trial whose curve is `errors` (every 4 steps) to `goal`."""
            ident = point.trial_identity(trial, values[trial], replicas)
            hit = next((k for k, e in enumerate(errors) if e <= goal), None)
            n = len(errors) if hit is None else hit + 1
            steps = tuple(4 * (k + 1) for k in range(n))
            rec = store.TrialRecord(
                run_id=store.run_id(ident), identity=ident, goal=goal, exit_goal=None, cap=None,
                status="incomplete" if hit is None else "complete",
                steps_to_result=None if hit is None else steps[-1], steps=steps[-1],
                eval_steps=steps, val_errors=tuple(errors[:n]), val_exact=(True,) * n,
                trained_on={"backend": "jax", **({"replicas": replicas} if replicas > 1 else {})})
            runs.put_trial(rec)
            return rec

        only_two = put(0, 2, goal, [0.5, 0.01])
        put(1, 1, 0.5, [0.4])                        # met a looser goal: cannot answer `goal`
        answers = put(1, 2, goal, [0.4, 0.3, 0.01])
        one = put(2, 1, goal, [0.5, 0.01])
        put(2, 2, goal, [0.5, 0.01])                 # the same outcome: the one-device record
        put(3, 1, goal, [0.5, 0.4])
        longer = put(3, 2, goal, [0.5, 0.4, 0.3])    # ran further
        got = records.stored_records(point, str(tmp_path))
        assert [r.run_id if r else None for r in got] == [
            only_two.run_id, answers.run_id, one.run_id, longer.run_id, None, None]
        assert point.trial_ids() != point.trial_ids(2) and "replicas" not in point.trial_identity(0, values[0])
