"""Tests for the command line (`python -m repro`), run as a subprocess from the repository root.

No training: only plan, run on bad specs (which must fail before anything is written),
verify without results, and data status.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from repro import __main__ as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_specs"
BAD_SPECS = sorted(BAD.glob("*.toml"))
SOME_BAD = ["syntax_error.toml", "unknown_model.toml", "zero_batch.toml", "missing_panels.toml",
            "nan_goal.toml", "momentum_for_sgd.toml", "unknown_key_batchsizes.toml",
            "sparsity_one.toml"]


def repro(*args, timeout=180):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "repro", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_bad_specs_folder_is_populated():
    assert len(BAD_SPECS) >= 50


def test_plan_full_json():
    r = repro("plan", "specs/figure-1.toml", "--grid", "full", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["models"]["simple_cnn"]["parameters"] == 62346
    assert d["grid"] == "full" and d["figure"] == "figure-1"
    a = next(p for p in d["panels"] if p["id"] == "a")
    assert a["evaluations_at_most"] == 14_000_000


@pytest.mark.parametrize("name", SOME_BAD)
def test_run_bad_spec_subprocess(name, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    r = repro("run", BAD / name, "--results", results, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert name in lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert list(results.iterdir()) == []


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.name)
def test_run_every_bad_spec_in_process(path, tmp_path, capsys):
    """All bad specs through cli.main (same code path as the subprocess, much faster)."""
    results = tmp_path / "results"
    code = cli.main(["run", str(path), "--results", str(results)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and path.name in lines[0], err
    assert not results.exists()


def test_verify_without_results_prints_not_run(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(ROOT / "specs" / "figure-1.toml", specs / "figure-1.toml")
    results = tmp_path / "results"
    r = repro("verify", specs, "--results", results)
    assert r.returncode == 0, r.stderr
    from repro.spec import load_spec
    sp = load_spec(specs / "figure-1.toml")
    wanted = [(p.id, c) for p in sp.panels for c in p.claims]
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("figure-1 ")]
    assert len(rows) == len(wanted) > 0, r.stdout
    assert sorted((row[1], row[2]) for row in rows) == sorted(wanted)
    assert all(row[3] == "NOT-RUN" for row in rows)
    assert "no results file" in r.stdout
    assert not results.exists()  # verify writes nothing


def test_data_status():
    r = repro("data", "status")
    assert r.returncode == 0, r.stderr
    for name in ("mnist", "fashion_mnist", "cifar10"):
        assert name in r.stdout


def test_unknown_grid_exits_2_in_one_line():
    r = repro("plan", "specs/figure-1.toml", "--grid", "nope")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "nope" in r.stderr
    assert "Traceback" not in r.stderr


BAD_GOLDEN = sorted((ROOT / "tests" / "bad_golden").glob("*.toml"))


@pytest.mark.parametrize("path", BAD_GOLDEN, ids=lambda p: p.name)
def test_verify_bad_golden_exits_2_in_one_line(path, tmp_path, capsys):
    """Malformed tolerances (syntax, missing table for a declared claim, unknown or mistyped
    keys, missing source) stop verify before any result is read: one line, file and key, exit 2."""
    expect = path.read_text().splitlines()[0].split(":", 1)[1].strip()
    code = cli.main(["verify", "specs/figure-1.toml", "--golden", str(path),
                     "--results", str(tmp_path / "none")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and path.name in lines[0], err
    if expect:
        assert f": {expect}: " in lines[0], lines[0]
    assert "(" in lines[0] and lines[0].endswith(")")  # the fix, in parentheses


def test_run_into_an_unwritable_results_folder_exits_2(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    code = cli.main(["run", "specs/figure-1.toml", "--panel", "b", "--results", str(blocker)])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "not writable" in err and "--results" in err
    assert blocker.read_text().startswith("a file")


# ---------------------------------------------------------------- absurd sizes (issue 20)

ISSUE_20 = [("huge_max_steps.toml", "panel[a].grid.full.max_steps"),
            ("huge_batch.toml", "panel[a].grid.full.batch_sizes[1]"),
            ("huge_trials.toml", "panel[a].grid.full.trials"),
            ("long_figure_id.toml", "figure.id")]


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("name,key", ISSUE_20, ids=[n for n, _ in ISSUE_20])
def test_absurd_sizes_answer_at_once_with_one_line(command, name, key, tmp_path):
    """The issue's cases, as a new user typed them: exit 2, file and key named, nothing
    written. The timeout only guards against a hang (before the limits, `plan --grid full` on
    a max_steps near 2**63 ran for minutes); the answer takes well under a second."""
    results = tmp_path / "results"
    r = repro(command, BAD / name, "--grid", "full", "--results", results, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and f": {key}: " in lines[0], r.stderr
    assert "Limits" in lines[0] or "more than" in lines[0]  # the limit is named
    assert r.stdout == "" and not results.exists()


BAD_OPTIONS = [
    (["run", "specs/figure-1.toml", "--workers", "0"], "--workers"),
    (["run", "specs/figure-1.toml", "--workers", str(2 ** 63)], "--workers"),
    (["bench", "--workers", "100000"], "--workers"),
    (["worker", "specs/figure-1.toml", "--threads", "0"], "--threads"),
    (["chief", "specs/figure-1.toml", "--port", "0"], "--port"),
    (["worker", "specs/figure-1.toml", "--port", "65536"], "--port"),
    (["run", "specs/figure-1.toml", "--goal", "nan"], "--goal"),
    (["collect", "specs/figure-1.toml", "--goal", "1e400"], "--goal"),
    (["verify", "specs/figure-1.toml", "--goal", "1.0"], "--goal"),
    (["plot", "specs/figure-1.toml", "--goal", "-0.5"], "--goal"),
    (["fits", "specs/figure-1.toml", "--n-boot", "0"], "--n-boot"),
    (["fits", "specs/figure-1.toml", "--n-boot", str(10 ** 11)], "--n-boot"),
    (["plan", "specs/figure-1.toml", "--max-device-batch", "0"], "--max-device-batch"),
    (["bench", "--trials", str(10 ** 11)], "--trials"),
    (["bench", "--batch-sizes", "16,x"], "--batch-sizes"),
    (["worker", "specs/figure-1.toml", "--tuner-id", "x" * 300], "--tuner-id"),
    (["worker", "specs/figure-1.toml", "--tuner-id", "../../elsewhere"], "--tuner-id"),
    (["verify", "specs/figure-1.toml", "--junit", "."], "--junit"),
    (["run", "specs/figure-1.toml", "--workers", "many"], "argument --workers"),
]


@pytest.mark.parametrize("argv,key", BAD_OPTIONS, ids=[" ".join(a)[:60] for a, _ in BAD_OPTIONS])
def test_out_of_range_options_exit_2_in_one_line_writing_nothing(argv, key, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(ROOT)
    results = tmp_path / "results"
    extra = [] if argv[0] == "bench" or "--junit" in argv else ["--results", str(results)]
    try:
        code = cli.main(argv + extra)
    except SystemExit as e:  # argparse refusing a malformed option
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repro: error: command line: ") and key in lines[0], err
    assert not results.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", ["file", "long"])
def test_results_folder_that_cannot_be_one_exits_2(make, tmp_path, capsys):
    """--results naming a file, or a path Linux cannot create: refused before the spec is
    even read, one line, nothing created."""
    if make == "file":
        results = tmp_path / "results"
        results.write_text("not a folder")
    else:
        results = tmp_path / ("r" * 300) / "results"
    code = cli.main(["run", "specs/figure-1.toml", "--results", str(results)])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--results" in err
    assert [p.name for p in tmp_path.iterdir()] == (["results"] if make == "file" else [])
