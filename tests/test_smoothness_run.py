"""Tests for repro.smoothness_run: a smoothness study end to end (measure, store, resume,
collect, plot, verify) on the SYNTHETIC dataset of conftest.py (`repro.data.load` is patched)."""
import json

import numpy as np
import pytest

from repro import claims, data as data_mod, figures, run, smoothness, smoothness_run, spec as spec_mod, study
from repro.errors import UsageError
from conftest import make_data

SPEC = """\
[figure]
id = "figure-smooth-test"
kind = "{kind}"
seed = 0

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
claims = {claims}

[panel.grid.full]
sparsities = [0.0, 0.9]
batch_size = 8
learning_rate = 0.05
steps = 12
lipschitz_every = 5
gradient_examples = 48
noise_batch_sizes = [4, 32]
noise_draws = 2
variance_examples = 8
"""


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    data = make_data(n_train=64, n_val=64)
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})  # engines hold their dataset: none from other tests
    return data


def spec_at(tmp_path, kind="lipschitz", claim_list=("lipschitz_increasing",), name="s"):
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(kind=kind, claims=json.dumps(list(claim_list))))
    return spec_mod.load_spec(path)


def test_a_study_measures_every_sparsity_and_a_second_figure_on_the_same_runs_trains_nothing(tmp_path):
    sp = spec_at(tmp_path)
    lines = []
    ds = smoothness_run.run_study(sp, "full", tmp_path / "results", log=lines.append)
    assert list(ds["step"].values) == [0, 5, 10]  # measured at k < steps, every 5
    assert (ds["status"].values == "complete").all()
    for name in ("train_loss", "grad_sq_norm", "noise_scale"):
        assert np.isfinite(ds[name].values).all(), name
    lip = ds["lipschitz"].values
    assert np.isnan(lip[..., 0]).all()  # not at initialisation (the authors' code neither)
    assert (lip[..., 1:] > 0).all()
    assert (ds["beta"].values > 0).all() and (ds["delta"].values > 0).all()
    assert any("[2/2 runs" in ln for ln in lines)
    # Figure 6 reads the same runs: nothing to measure, identical numbers.
    sp6 = spec_at(tmp_path, kind="training_loss", claim_list=["sparse_loss_higher"], name="s6")
    lines6 = []
    ds6 = smoothness_run.run_study(sp6, "full", tmp_path / "results", log=lines6.append)
    assert not any("runs |" in ln for ln in lines6)
    np.testing.assert_array_equal(ds6["train_loss"].values, ds["train_loss"].values)


def test_measuring_does_not_disturb_training_and_is_deterministic(tmp_path):
    """The probe network is separate: the run's final loss equals an unmeasured run's, and a
    second measurement of the same run gives the same numbers."""
    sp = spec_at(tmp_path)
    p, g = sp.panels[0], sp.panels[0].grids["full"]
    a = smoothness_run.measure_run(sp, p, g, 0.9, str(tmp_path / "r1"))
    b = smoothness_run.measure_run(sp, p, g, 0.9, str(tmp_path / "r2"))
    assert a["lipschitz"] == b["lipschitz"] and a["final_loss"] == b["final_loss"]
    import dataclasses
    coarse = dataclasses.replace(g, lipschitz_every=g.steps)  # one measurement at step 0 only
    c = smoothness_run.measure_run(sp, p, coarse, 0.9, str(tmp_path / "r3"))
    assert c["final_loss"] == a["final_loss"]


def test_collect_reads_records_and_marks_missing_runs_not_run(tmp_path):
    sp = spec_at(tmp_path)
    ds = smoothness_run.collect(sp, "full", tmp_path / "nothing")
    assert (ds["status"].values == "not_run").all() and np.isnan(ds["lipschitz"].values).all()
    r = claims.verify_dataset(ds, sp.id, {"a": ["lipschitz_increasing"]},
                              claims.load_golden("golden/figure-4.toml"),
                              reading=study.study_kind(sp).claim_reading())
    assert r[0].status == claims.NOT_RUN


def test_plot_and_verify_on_a_measured_study(tmp_path):
    sp = spec_at(tmp_path, claim_list=["lipschitz_increasing", "c1_decomposition"])
    ds = smoothness_run.run_study(sp, "full", tmp_path / "results", log=lambda *_: None)
    paths = figures.render(ds, tmp_path / "fig4", kind="lipschitz")
    assert all(p.stat().st_size > 0 for p in paths)
    paths = figures.render(ds, tmp_path / "fig6", kind="training_loss")
    assert all(p.stat().st_size > 0 for p in paths)
    golden = claims.load_golden("golden/figure-4.toml")
    res = claims.verify_dataset(ds, sp.id, {"a": ["lipschitz_increasing", "c1_decomposition"]},
                                golden, str(tmp_path / "results"), reading=study.study_kind(sp).claim_reading())
    lip, dec = res
    assert lip.status in (claims.PASS, claims.FAIL)  # decided from the data, either way
    mean = {s: float(ds["lipschitz"].sel(panel="a", sparsity=s).mean()) for s in (0.0, 0.9)}
    assert (lip.status == claims.PASS) == (mean[0.9] > mean[0.0])
    assert dec.values["ratios"]["lipschitz"] == pytest.approx(mean[0.9] / mean[0.0])
    assert "fitted c1 ratio not available" in dec.measured  # no figure-1 results in tmp


def test_a_search_claim_on_a_smoothness_figure_is_not_run(tmp_path):
    sp = spec_at(tmp_path)
    ds = smoothness_run.collect(sp, "full", tmp_path / "nothing")
    ds["status"][:] = "complete"
    r = claims.check_one(ds, sp.id, "a", "linear_scaling", claims.load_golden("golden/figure-1.toml"),
                         reading=study.study_kind(sp).claim_reading())
    assert r.status == claims.NOT_RUN and "K*(B) of a search" in r.detail


@pytest.mark.parametrize("edit, key", [
    ('lipschitz_every = 5', "lipschitz_every = 50"),
    ('noise_batch_sizes = [4, 32]', "noise_batch_sizes = [4]"),
    ('learning_rate = 0.05', "learning_rate = -1.0"),
    ('batch_size = 8', "batch_sise = 8"),
])
def test_bad_smoothness_grids_name_the_key(tmp_path, edit, key):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.format(kind="lipschitz", claims="[]").replace(edit, key))
    with pytest.raises(UsageError) as e:
        spec_mod.load_spec(path)
    assert "panel[a].grid.full." in str(e.value)


def test_masked_loss_matches_a_direct_gradient(synthetic):
    """MaskedLoss.mean equals one big-batch gradient of the masked model (chunking is exact
    up to float rounding), and pruned entries get zero gradient."""
    import tensorflow as tf
    from repro import models
    model = models.build("simple_cnn", (28, 28, 1))
    w = models.initial_weights(model, 0)
    masks = [(np.random.default_rng(i).random(a.shape) > 0.5).astype(np.float32) for i, a in enumerate(w)]
    probe = smoothness.MaskedLoss(model, masks)
    loss, g = probe.mean(w, synthetic.x_train, synthetic.y_train, chunk=10)
    for v, a, m in zip(model.trainable_variables, w, masks):
        v.assign(a * m)
    with tf.GradientTape() as tape:
        logits = model(synthetic.x_train, training=False)
        ref = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(synthetic.y_train, logits))
    ref_g = tape.gradient(ref, model.trainable_variables)
    assert loss == pytest.approx(float(ref), rel=1e-5)
    for a, b, m in zip(g, ref_g, masks):
        np.testing.assert_allclose(a, b.numpy() * m, rtol=1e-4, atol=1e-6)
        assert (a[m == 0] == 0).all()
