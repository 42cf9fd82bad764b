"""Tests for repro.spec: a valid round trip, evaluation schedules, and one error per bad spec."""

import dataclasses
import hashlib
import os
import pathlib

import pytest

from repro.errors import UsageError
from repro.spec import Dim, Grid, eval_steps, load_spec, load_specs

BAD = pathlib.Path(__file__).parent / "bad_specs"

VALID = """\
[figure]
id = "figure-test"
title = "A small valid spec"
kind = "data_parallelism"
seed = 3

[[panel]]
id = "a"
title = "MNIST, Simple-CNN, Momentum"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.02
claims = ["plateau", "linear_scaling"]

[panel.search]
learning_rate = { min = 1e-4, max = 1, scale = "log" }
momentum = { min = 0.9, max = 0.9999, scale = "reverse_log" }

[panel.grid.full]
batch_sizes = [16, 2, 4, 8]
sparsities = [0.9, 0.0, 0.5]
trials = 100
max_steps = 40000
eval_every = 16

[panel.grid.reduced]
batch_sizes = [32, 8]
sparsities = [0.0]
trials = 8
max_steps = 400
eval_every = 4
eval_per_octave = 4
why = "fewer points"

[panel.grid.reduced.search]
momentum = { min = 0.5, max = 0.99 }

[[panel]]
id = "b"
dataset = "cifar10"
model = "resnet8"
optimizer = "nesterov"
schedule = "linear_decay"
goal_error = 0.4

[panel.search]
learning_rate = { min = 1e-4, max = 1.0 }
momentum = { min = 0.9, max = 0.9999 }
decay_steps = { min = 30000, max = 60000, scale = "linear" }
end_factor = { min = 1e-4, max = 0.1, scale = "log" }

[panel.grid.full]
batch_sizes = [2]
sparsities = [0]
trials = 1
max_steps = 100000
eval_every = 32
"""


def _grid(**kw):
    base = dict(name="g", batch_sizes=(1,), sparsities=(0.0,), trials=1, max_steps=100,
                eval_every=10, eval_per_octave=0, search=(), why="")
    return Grid(**{**base, **kw})


def test_valid_round_trip(tmp_path):
    path = tmp_path / "figure-test.toml"
    path.write_text(VALID)
    spec = load_spec(path)
    assert spec.path == path and spec.id == "figure-test" and spec.kind == "data_parallelism"
    assert spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (spec.seed, spec.sobol, spec.sobol_seed) == (3, "unscrambled", 0)
    a = spec.panel("a")
    assert a.claims == ("linear_scaling", "plateau")
    full = a.grids["full"]
    assert full.batch_sizes == (2, 4, 8, 16) and full.sparsities == (0.0, 0.5, 0.9)
    assert (full.trials, full.max_steps, full.eval_every, full.eval_per_octave, full.why) == (
        100, 40000, 16, 0, "")
    assert full.search == (Dim("learning_rate", 1e-4, 1.0, "log", False),
                           Dim("momentum", 0.9, 0.9999, "reverse_log", False))
    red = a.grids["reduced"]
    assert red.batch_sizes == (8, 32) and red.why == "fewer points"
    assert red.search[1] == Dim("momentum", 0.5, 0.99, "reverse_log", False)
    assert red.search[0] == full.search[0]
    b = spec.panel("b")
    assert b.title == "" and b.claims == () and b.grids["full"].sparsities == (0.0,)
    assert [d.name for d in b.grids["full"].search] == [
        "learning_rate", "momentum", "decay_steps", "end_factor"]
    assert b.grids["full"].search[2].integer and isinstance(b.grids["full"].search[2].min, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.id = "x"
    with pytest.raises(UsageError, match=r"panel\[c\]"):
        spec.panel("c")
    assert [s.id for s in load_specs(tmp_path)] == ["figure-test"]
    assert load_specs(path)[0] == spec


def test_load_specs_empty_folder(tmp_path):
    with pytest.raises(UsageError, match="no \\*.toml"):
        load_specs(tmp_path)


def test_dim_value_scales():
    lr = Dim("learning_rate", 1e-4, 1.0, "log", False)
    assert [round(lr.value(p), 6) for p in (0.0, 0.5, 1.0)] == [1e-4, 1e-2, 1.0]
    m = Dim("momentum", 0.9, 0.9999, "reverse_log", False)
    assert m.value(0.0) == pytest.approx(0.9999) and m.value(1.0) == pytest.approx(0.9)
    assert m.value(0.5) == pytest.approx(1 - 10 ** -2.5)  # 1 - m log-uniform on [1e-4, 1e-1]
    d = Dim("decay_steps", 30000, 60000, "linear", True)
    assert d.value(0.5) == 45000 and isinstance(d.value(0.3), int)


def test_eval_steps_fixed():
    assert eval_steps(_grid(max_steps=50, eval_every=10)) == [10, 20, 30, 40, 50]
    assert eval_steps(_grid(max_steps=100, eval_every=16)) == [16, 32, 48, 64, 80, 96]
    assert eval_steps(_grid(max_steps=1000, eval_every=16), max_steps=40) == [16, 32]


def test_eval_steps_geometric():
    g = _grid(max_steps=200, eval_every=4, eval_per_octave=2)
    # +4 while that is coarser than a factor sqrt(2), then ceil(s * sqrt(2)).
    assert eval_steps(g) == [4, 8, 12, 17, 25, 36, 51, 73, 104, 148]
    g1 = _grid(max_steps=100, eval_every=3, eval_per_octave=1)
    assert eval_steps(g1) == [3, 6, 12, 24, 48, 96]


def _expected_key(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect:"), path
    return first.split(":", 1)[1].strip()


BAD_FILES = sorted(BAD.glob("*.toml"))


def test_enough_bad_specs():
    assert len(BAD_FILES) >= 30


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_spec(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(BAD))
    with pytest.raises(UsageError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "\n" not in msg and path.name in msg
    key = _expected_key(path)
    if key:
        assert info.value.key == key, msg
        assert f": {key}: " in msg
    else:
        assert info.value.key is None
    assert os.listdir(tmp_path) == [] and set(os.listdir(BAD)) == before


def test_did_you_mean():
    with pytest.raises(UsageError) as info:
        load_spec(BAD / "unknown_key_batchsizes.toml")
    assert "did you mean 'batch_sizes'?" in str(info.value)
    with pytest.raises(UsageError) as info:
        load_spec(BAD / "unknown_claim.toml")
    assert "did you mean 'plateau'?" in str(info.value)
    with pytest.raises(UsageError) as info:
        load_spec(BAD / "unknown_dataset.toml")
    assert "known: mnist, fashion_mnist, cifar10" in str(info.value)


def test_syntax_error_has_line_and_column():
    with pytest.raises(UsageError) as info:
        load_spec(BAD / "syntax_error.toml")
    assert "line" in str(info.value) and "column" in str(info.value)


# ---------------------------------------------------------------- size limits (issue 20)

def _valid_with(tmp_path, old, new, name="figure-test.toml"):
    assert old in VALID
    path = tmp_path / name
    path.write_text(VALID.replace(old, new))
    return path


def test_spec_file_over_the_size_limit_is_refused_unread(tmp_path):
    from repro.spec import MAX_SPEC_BYTES
    path = tmp_path / "figure-test.toml"
    path.write_text(VALID + "#" * MAX_SPEC_BYTES)
    with pytest.raises(UsageError) as info:
        load_spec(path)
    assert info.value.key is None and "1,048,576 bytes" in str(info.value)


def test_batch_size_limit_is_the_datasets_training_split(tmp_path):
    # panel b is CIFAR-10: 50,000 training images less 5,000 for validation
    ok = load_spec(_valid_with(tmp_path, "batch_sizes = [2]\n", "batch_sizes = [45000]\n"))
    assert ok.panel("b").grids["full"].batch_sizes == (45000,)
    with pytest.raises(UsageError) as info:
        load_spec(_valid_with(tmp_path, "batch_sizes = [2]\n", "batch_sizes = [45001]\n"))
    assert info.value.key == "panel[b].grid.full.batch_sizes[0]" and "45,000" in str(info.value)


def test_training_split_limits_match_repro_data():
    from repro import data, datasets
    from repro.spec import TRAIN_EXAMPLES
    for name, n in TRAIN_EXAMPLES.items():
        total = datasets.RAW_SHAPES[name][0][0]
        assert n == total - data.validation_size(name)


def test_long_lists_are_checked_for_duplicates_in_linear_time(tmp_path):
    """A 1 MiB spec holds ~100,000 list items; a quadratic duplicate check would take minutes."""
    values = ", ".join(str(x % 1000 / 1000) for x in range(100_000))
    path = _valid_with(tmp_path, "sparsities = [0.9, 0.0, 0.5]", f"sparsities = [{values}]")
    with pytest.raises(UsageError) as info:
        load_spec(path)
    assert info.value.key == "panel[a].grid.full.sparsities[1000]"


def test_spec_wide_evaluation_budget(tmp_path):
    """Each grid within the per-trial limit, but together more than MAX_SPEC_EVALUATIONS."""
    from repro.spec import MAX_SPEC_EVALUATIONS
    grids = "".join(f"\n[panel.grid.g{i}]\nbatch_sizes = [2]\nsparsities = [0]\ntrials = 1\n"
                    f"max_steps = 100000\neval_every = 1\n" for i in range(6))
    path = tmp_path / "figure-test.toml"
    path.write_text(VALID + grids)
    with pytest.raises(UsageError) as info:
        load_spec(path)
    # VALID's own grids use a few thousand, so the fifth 100,000-evaluation grid tips it over
    assert info.value.key == "panel[b].grid.g4.eval_every"
    assert f"{MAX_SPEC_EVALUATIONS:,}" in str(info.value)


def test_eval_count_matches_eval_steps_and_is_bounded():
    from repro.spec import MAX_EVALUATIONS, eval_count
    for m, e, n in [(50, 10, 0), (200, 4, 2), (100, 3, 1), (40000, 16, 0), (12000, 4, 8),
                    (99_999, 7, 3), (1000, 1000, 5), (123_456, 1, 50), (90_000, 1, 20_000)]:
        assert eval_count(m, e, n, cap=10 ** 9) == len(eval_steps(_grid(max_steps=m, eval_every=e,
                                                                        eval_per_octave=n)))
    assert eval_count(10 ** 8, 1, 0) == MAX_EVALUATIONS + 1  # capped, not counted out
    assert eval_count(10 ** 8, 1, 100_000) == MAX_EVALUATIONS + 1
    with pytest.raises(ValueError, match="more than 100000 evaluations"):
        eval_steps(_grid(max_steps=2 ** 63, eval_every=1))  # an unvalidated Grid: refused, not built
