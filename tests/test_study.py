"""Tests for repro.study: a search spec and a smoothness spec behind the one Study interface.

Tiny SYNTHETIC specs written to tmp_path; nothing is trained and no dataset is read (collect
reads an empty results folder)."""
import json

import pytest

from repro import plan as plan_mod, spec as spec_mod, study as study_mod
from repro.errors import UsageError

SEARCH_SPEC = """\
[figure]
id = "{id}"
seed = 0

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
schedule = "constant"
goal_error = 0.3

[panel.search]
learning_rate = { min = 1e-3, max = 0.3, scale = "log" }

[panel.grid.full]
batch_sizes = [8, 16]
sparsities = [0.0, 0.9]
trials = 3
max_steps = 32
eval_every = 4
"""

SMOOTHNESS_SPEC = """\
[figure]
id = "{id}"
kind = "{kind}"
seed = 0

[[panel]]
id = "a"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"

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


def write_spec(tmp_path, text, **fields):
    path = tmp_path / f"{fields['id']}.toml"
    path.write_text(text.replace("{id}", fields["id"]).replace("{kind}", fields.get("kind", "")))
    return spec_mod.load_spec(path)


@pytest.fixture
def search(tmp_path):
    return study_mod.load_study(write_spec(tmp_path, SEARCH_SPEC, id="search-test"), grid_name="full")


@pytest.fixture
def smoothness(tmp_path):
    sp = write_spec(tmp_path, SMOOTHNESS_SPEC, id="smooth-test", kind="lipschitz")
    return study_mod.load_study(sp, grid_name="full")


def test_each_kind_of_spec_loads_its_own_study(search, smoothness):
    assert isinstance(search, study_mod.SearchStudy) and search.has_k_star_fits
    assert isinstance(smoothness, study_mod.SmoothnessStudy) and not smoothness.has_k_star_fits
    for study in (search, smoothness):
        assert isinstance(study, study_mod.Study)
        assert study.grid_name == "full" and study.figure_kind == study.spec.kind


def test_describe_is_json_and_its_text_names_the_figure(search, smoothness):
    for study, trials in ((search, 2 * 2 * 3), (smoothness, 2)):
        d = study.describe(max_device_batch=8192)
        assert json.loads(json.dumps(d))["figure"] == study.spec.id
        assert d["totals"]["trials"] == trials
        assert study.format_description(d).startswith(f"{study.spec.id} (full grid")


def test_collect_from_an_empty_results_folder_holds_nothing_run(search, smoothness, tmp_path):
    empty = tmp_path / "results"
    ds = search.collect(results_dir=empty)
    assert int((ds["status_by_seed"] > 0).sum()) == 0
    assert search.describe_collected(ds) == "from 0 stored trials (12 of 12 not run yet)"
    ds = smoothness.collect(results_dir=empty)
    assert (ds["status"].values == "not_run").all()
    assert smoothness.describe_collected(ds) == "from 0 stored runs of 2"
    assert smoothness.fits(ds) == {}


def test_a_goal_reads_a_search_into_its_own_file_and_a_smoothness_study_has_none(tmp_path):
    sp = write_spec(tmp_path, SEARCH_SPEC, id="search-test")
    at_goal = study_mod.load_study(sp, grid_name="full", goal=0.2)
    assert at_goal.results_path("r").name == "search-test.full.goal0.2.nc"
    ds = at_goal.collect(results_dir=tmp_path / "r")
    assert ds.attrs["goal"] == 0.2
    assert at_goal.describe_collected(ds) == ("from 0 stored trials (12 of 12 not run yet, or not "
                                              "answerable at goal 0.2 by the stored curves)")
    sm = write_spec(tmp_path, SMOOTHNESS_SPEC, id="smooth-test", kind="lipschitz")
    assert study_mod.load_study(sm, grid_name="full", goal=0.2).results_path("r").name == \
        "smooth-test.full.nc"


def test_figures_on_the_same_runs_share_them_whatever_the_kind(tmp_path, search):
    fig4 = write_spec(tmp_path, SMOOTHNESS_SPEC, id="fig-l", kind="lipschitz")
    fig6 = write_spec(tmp_path, SMOOTHNESS_SPEC, id="fig-loss", kind="training_loss")
    studies = [study_mod.load_study(sp, grid_name="full") for sp in (fig4, fig6)] + [search]
    sharing = plan_mod.shared_runs(studies)
    assert sharing["figures"]["fig-loss"] == {"runs": 2, "new_runs": 0, "shared_with": {"fig-l": 2}}
    assert sharing["figures"]["search-test"]["runs"] == len(set(search.run_ids())) == 12
    assert sharing["unique_runs"] == 2 + 12


@pytest.mark.parametrize("text, kind", [(SEARCH_SPEC, ""), (SMOOTHNESS_SPEC, "lipschitz")])
def test_an_unknown_grid_or_panel_is_a_usage_error(tmp_path, text, kind):
    sp = write_spec(tmp_path, text, id="bad-test", kind=kind)
    with pytest.raises(UsageError, match="nope"):
        study_mod.load_study(sp, grid_name="nope")
    with pytest.raises(UsageError):
        study_mod.load_study(sp, grid_name="full", panels=["zz"])


def test_the_kind_of_a_spec_says_how_its_stored_results_are_read_and_counted(tmp_path, search, smoothness):
    from repro import claims
    for study, reading, unit in ((search, claims.SEARCH_RESULTS, "trials"),
                                 (smoothness, claims.SMOOTHNESS_RESULTS, "runs")):
        kind = study_mod.study_kind(study.spec)
        assert kind is type(study) and kind.claim_reading() is reading and kind.stored_unit == unit
        stored = kind.stored_results(study.spec, grid_name="full", results_dir=tmp_path / "none")
        assert stored.dataset is None and stored.missing == (
            f"no results file {tmp_path / 'none' / study.spec.id}.full.nc; run: python -m repro run "
            f"{study.spec.path} --grid full --results {tmp_path / 'none'}")
        ds = study.collect(results_dir=tmp_path / "empty")
        asked = 2 * 2 * 3 if kind is study_mod.SearchStudy else 2
        assert kind.stored_counts(ds, study.spec, "full") == {"a": (0, asked)}
    assert search.results_note == "" and "no K* table" in smoothness.results_note
    at_goal = study_mod.SearchStudy.stored_results(search.spec, grid_name="full", results_dir=tmp_path, goal=0.2)
    assert at_goal.dataset.attrs["goal"] == 0.2  # the stored runs re-read at the goal: none stored
    assert at_goal.unanswered == (f"search-test: 12 trials not stored or not answerable at goal 0.2 by the "
                                  f"stored curves; run: python -m repro run {search.spec.path} --grid full "
                                  f"--results {tmp_path} --goal 0.2")
