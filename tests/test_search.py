"""Tests for repro.search: the Sobol points, their mapping to values, and the keras-tuner loop.

No training: the tuner drives FAKE run_trial functions that record what they receive.
"""
import math

import numpy as np
import pytest
from keras_tuner.engine import base_tuner

from repro import search
from repro.spec import Dim

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-tuner internals

LR = Dim("learning_rate", 1e-4, 1.0, "log", False)
MOM = Dim("momentum", 0.9, 0.9999, "reverse_log", False)
DECAY = Dim("decay_steps", 30000, 60000, "linear", True)
END = Dim("end_factor", 1e-4, 0.1, "log", False)


def test_first_six_learning_rates_match_paper():
    got = [p["learning_rate"] for p in search.first_points((LR,), 6)]
    want = [0.01, 0.1, 0.001, 0.00316, 0.316, 0.0316]
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=1e-3)


def test_first_point_is_half_in_every_dimension():
    pts = search.sobol_points(4, 3)
    np.testing.assert_array_equal(pts[0], [0.5, 0.5, 0.5, 0.5])
    assert not np.any(np.all(pts == 0.0, axis=1))  # the all-zero point is skipped


def test_reverse_log_momentum_first_point():
    p = search.first_points((LR, MOM), 3)
    assert p[0]["momentum"] == pytest.approx(1 - 10 ** -2.5, rel=1e-9)  # 0.996837...
    assert p[0]["learning_rate"] == pytest.approx(0.01, rel=1e-9)
    for v in p:
        assert 0.9 <= v["momentum"] <= 0.9999
        assert "one_minus_momentum" not in v


def test_values_agree_with_spec_dim_mapping():
    """search's keras-tuner mapping equals spec.Dim.value (the documented formula) for the
    float scales log, linear and reverse_log."""
    lin = Dim("learning_rate", 0.01, 2.0, "linear", False)
    dims = (LR, MOM, END)
    pts = search.sobol_points(3, 16)
    vals = search.first_points(dims, 16)
    for p, v in zip(pts, vals):
        for d, x in zip(dims, p):
            assert v[d.name] == pytest.approx(d.value(x), rel=1e-9)
    for p, v in zip(search.sobol_points(1, 8), search.first_points((lin,), 8)):
        assert v["learning_rate"] == pytest.approx(lin.value(p[0]), rel=1e-9)


def test_integer_dim_paper_range_within_one_step():
    pts = search.sobol_points(1, 64)
    for p, v in zip(pts, search.first_points((DECAY,), 64)):
        assert isinstance(v["decay_steps"], int)
        assert 30000 <= v["decay_steps"] <= 60000
        assert abs(v["decay_steps"] - DECAY.value(p[0])) <= 1


def test_integer_dim_matches_documented_rounding():
    small = Dim("decay_steps", 1, 4, "linear", True)
    pts = search.sobol_points(1, 8)
    got = [v["decay_steps"] for v in search.first_points((small,), 8)]
    assert got == [small.value(p[0]) for p in pts]


class FnTuner(base_tuner.BaseTuner):
    """A keras-tuner search whose trial i calls fn(i, metaparameters) -> steps (None: +inf),
    as a user's keras-tuner loop (repro bench's naive side) drives the oracle."""

    def __init__(self, oracle, fn, **kw):
        self.fn = fn
        super().__init__(oracle=oracle, hypermodel=None, **kw)

    def run_trial(self, trial, *args, **kwargs):
        k = self.fn(self.oracle.sobol_index(trial.trial_id),
                    search.metaparameters(trial.hyperparameters.values))
        return {search.OBJECTIVE: math.inf if k is None else float(k)}

    def save_model(self, trial_id, model, step=0):
        return None

    def load_model(self, trial):
        return None


def fake_tuner(tmp_path, space, n, fn, scrambled=False, seed=0, project="p"):
    oracle = search.SobolOracle(space, n, scrambled=scrambled, seed=seed)
    return oracle, FnTuner(oracle, fn, directory=tmp_path, project_name=project)


def test_trial_i_receives_point_i(tmp_path):
    calls = []

    def fn(i, values):
        calls.append((i, values))
        return 100 + i

    oracle, tuner = fake_tuner(tmp_path, (LR, MOM), 7, fn)
    tuner.search(verbose=0)
    want = search.first_points((LR, MOM), 7)
    assert [i for i, _ in calls] == list(range(7))
    for (i, v), w in zip(calls, want):
        assert set(v) == {"learning_rate", "momentum"}
        # exactly equal: run ids hash these values, and the replay recomputes them
        assert v == w
    best = oracle.get_best_trials(1)[0]
    assert best.score == 100  # the objective is minimised
    assert int(best.trial_id) == 0


def test_infeasible_trials_do_not_stop_the_search(tmp_path):
    calls = []

    def fn(i, values):
        calls.append(i)
        return None if i < 5 else 50 - i  # five infeasible in a row, then numbers

    oracle, tuner = fake_tuner(tmp_path, (LR,), 9, fn)
    tuner.search(verbose=0)
    assert calls == list(range(9))
    scores = {int(t.trial_id): t.score for t in oracle.trials.values()}
    assert all(math.isinf(scores[i]) for i in range(5))
    assert scores[8] == 42
    assert int(oracle.get_best_trials(1)[0].trial_id) == 8


def test_all_infeasible_still_runs_every_trial(tmp_path):
    calls = []
    _, tuner = fake_tuner(tmp_path, (LR,), 12, lambda i, v: calls.append(i))
    tuner.search(verbose=0)
    assert calls == list(range(12))


def test_resume_after_interrupt_runs_remaining_trials_once(tmp_path):
    n = 8
    first, second = [], []

    def interrupted(i, values):
        first.append((i, values["learning_rate"]))
        if i == 3:
            raise KeyboardInterrupt  # a BaseException: keras-tuner lets it through
        return 10 + i

    _, tuner = fake_tuner(tmp_path, (LR,), n, interrupted)
    with pytest.raises(KeyboardInterrupt):
        tuner.search(verbose=0)
    assert [i for i, _ in first] == [0, 1, 2, 3]

    def resumed(i, values):
        second.append((i, values["learning_rate"]))
        return 10 + i

    oracle, tuner = fake_tuner(tmp_path, (LR,), n, resumed)
    tuner.search(verbose=0)
    ids = [i for i, _ in second]
    assert ids == list(range(3, n))  # trial 3 (in flight) again, then the rest, each once
    finished = {i: lr for i, lr in first[:3]} | dict(second)
    assert sorted(finished) == list(range(n))
    want = [p["learning_rate"] for p in search.first_points((LR,), n)]
    for i, lr in finished.items():
        assert lr == pytest.approx(want[i], rel=1e-12)
    assert len(oracle.trials) == n

    # a third search on the finished directory runs nothing
    third = []
    _, tuner = fake_tuner(tmp_path, (LR,), n, lambda i, v: third.append(i))
    tuner.search(verbose=0)
    assert third == []


def test_scrambled_is_deterministic_and_differs_from_unscrambled():
    a = search.sobol_points(2, 8, scrambled=True, seed=5)
    b = search.sobol_points(2, 8, scrambled=True, seed=5)
    c = search.sobol_points(2, 8, scrambled=True, seed=6)
    u = search.sobol_points(2, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, u)
    assert np.all((a >= 0) & (a < 1))
    va = search.first_points((LR, MOM), 8, scrambled=True, seed=5)
    vb = search.first_points((LR, MOM), 8, scrambled=True, seed=5)
    assert va == vb
    assert va[0]["learning_rate"] != pytest.approx(0.01, rel=1e-3)


def test_scrambled_tuner_uses_the_scrambled_points(tmp_path):
    calls = []

    def fn(i, v):
        calls.append(v["learning_rate"])
        return 1

    fake_tuner(tmp_path, (LR,), 4, fn, scrambled=True, seed=5)[1].search(verbose=0)
    want = [p["learning_rate"] for p in search.first_points((LR,), 4, scrambled=True, seed=5)]
    np.testing.assert_allclose(calls, want, rtol=1e-12)


def _spec_spaces():
    """Every search space (and trial count) the specs in specs/ ask for."""
    import pathlib
    from repro import spec as spec_mod
    root = pathlib.Path(__file__).resolve().parent.parent / "specs"
    out = {}
    for sp in spec_mod.load_specs(root):
        for p in sp.panels:
            for g in p.grids.values():
                if hasattr(g, "search"):  # smoothness grids measure runs, they search nothing
                    out[g.search] = max(out.get(g.search, 0), g.trials)
    return sorted(out.items(), key=repr)


@pytest.mark.parametrize("scrambled", [False, True])
def test_first_points_are_the_oracles_floats_exactly(scrambled):
    """first_points maps the points without keras-tuner: the very floats (run ids hash them) the
    SobolOracle gives, for every spec's search space and the odd dimensions above."""
    spaces = _spec_spaces() + [((LR, MOM, DECAY, END), 64), ((Dim("decay_steps", 1, 4, "linear", True),
                                                              Dim("steps", 3, 900, "log", True)), 40)]
    assert len(spaces) >= 3
    for space, n in spaces:
        oracle = search.SobolOracle(space, n, scrambled=scrambled, seed=3)
        want = [search.metaparameters(oracle.populate_space(str(i))["values"]) for i in range(n)]
        got = search.first_points(space, n, scrambled=scrambled, seed=3)
        assert got == want
        assert [list(g) for g in got] == [list(w) for w in want]  # the same key order too
        assert all(type(g[k]) is type(w[k]) for g, w in zip(got, want) for k in w)
