"""A study run piece by piece keeps all its results, and a study without claims gets its page
(issue 34), through the command line on SYNTHETIC MNIST-shaped data (conftest's
`synthetic_mnist`, a temporary REPRO_DATA folder): nothing real is read.

- Two `repro run --panel` calls into one results folder: the results file holds both panels
  (no `collect` in between), `verify` gives both their verdicts, and the panel never run is
  NOT-RUN with the command that runs it.
- A spec whose panels declare no claims (and no golden file): `verify` says there is nothing
  to check (exit 0) and `report` shows its K* tables.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import xarray as xr

from repro import __main__ as cli

ROOT = pathlib.Path(__file__).resolve().parent.parent

PANEL = """
[[panel]]
id = "{id}"
title = "synthetic MNIST-shaped, Simple-CNN, momentum, B={b}"
dataset = "mnist"
model = "simple_cnn"
optimizer = "momentum"
schedule = "constant"
goal_error = 0.5
claims = {claims}

[panel.search]
learning_rate = {{ min = 0.01, max = 0.05, scale = "log" }}
momentum = {{ min = 0.8, max = 0.9, scale = "reverse_log" }}

[panel.grid.full]
batch_sizes = [{b}]
sparsities = [0.0, 0.5]
trials = 2
max_steps = 96
eval_every = 8
"""


def spec_text(figure, claims, panels=(("b", 32), ("c", 64), ("d", 128))):
    head = f'[figure]\nid = "{figure}"\ntitle = "{figure}: issue 34 (synthetic data)"\nseed = 5\n'
    return head + "".join(PANEL.format(id=pid, b=b, claims=json.dumps(claims)) for pid, b in panels)


GOLDEN = """\
[sparse_slower]
min_ratio = 0.01
source = "test tolerance: any ratio above 0.01 (issue 34 checks that verdicts are given, not their value)"
why = "a verdict needs a measured K* at both sparsities"
"""


def repro(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "repro", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_mnist):
    """A folder with specs/panels-test.toml (panels b, c, d, each claiming sparse_slower, and
    its golden file) and specs/conc.toml (panels b and c, no claims, no golden file); panels
    (c) then (b) of panels-test run into its results/ by two `repro run --panel` calls."""
    root = tmp_path_factory.mktemp("study")
    (root / "specs").mkdir()
    (root / "golden").mkdir()
    (root / "specs" / "panels-test.toml").write_text(spec_text("panels-test", ["sparse_slower"]))
    (root / "golden" / "panels-test.toml").write_text(GOLDEN)
    (root / "specs" / "conc.toml").write_text(spec_text("conc", [], panels=(("b", 32), ("c", 64))))
    env = dict(os.environ, REPRO_DATA=str(synthetic_mnist), TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = [repro("run", "specs/panels-test.toml", "--grid", "full", "--panel", p, "--workers", "1",
                  env=env, cwd=root)
            for p in ("c", "b")]
    for r in runs:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root, env, runs


def test_two_panel_runs_keep_both_panels_in_the_results_file(study):
    root, env, runs = study
    assert "trained 4 trials" in runs[1].stdout  # the second run trained panel (b) only
    ds = xr.load_dataset(root / "results" / "panels-test.full.nc")
    assert sorted(map(str, ds["panel"].values)) == ["b", "c", "d"]
    for pid in ("b", "c"):  # both run panels hold their measured K* at both sparsities
        assert bool(ds["steps_to_result"].sel(panel=pid).notnull().any()), pid
        assert int((ds["status"].sel(panel=pid) > 0).sum()) == 4, pid
    assert int((ds["status"].sel(panel="d") > 0).sum()) == 0  # never run, and marked so
    assert "d: " in ds.attrs["panels_not_run"] and "b: " not in ds.attrs["panels_not_run"]

    r = repro("verify", "specs/panels-test.toml", "--grid", "full", "--json", env=env, cwd=root)
    assert r.returncode in (0, 1), r.stderr[-2000:]  # no `collect` was run in between
    rows = {row["panel"]: row for row in json.loads(r.stdout)}
    assert sorted(rows) == ["b", "c", "d"]
    for pid in ("b", "c"):
        assert rows[pid]["status"] in ("PASS", "FAIL", "INCONCLUSIVE"), rows[pid]
        assert rows[pid]["measured"] != "-", rows[pid]
    assert rows["d"]["status"] == "NOT-RUN"
    assert "python -m repro run specs/panels-test.toml --grid full --panel d" in rows["d"]["detail"], rows["d"]

    # each run said what the file holds
    assert "panels-test.full.nc (panel c stored; b, d not run)" in runs[0].stdout, runs[0].stdout
    assert "panels-test.full.nc (panels b, c stored; d not run)" in runs[1].stdout, runs[1].stdout

    # `collect` writes the same file: every panel whose trials are stored
    r = repro("collect", "specs/panels-test.toml", "--grid", "full", "--panel", "b", env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    again = xr.load_dataset(root / "results" / "panels-test.full.nc")
    assert again.attrs["trials_sha256"] == ds.attrs["trials_sha256"]


def test_a_study_without_claims_is_verified_and_reported_without_a_golden_file(study):
    root, env, _ = study
    assert not (root / "golden" / "conc.toml").exists()
    r = repro("run", "specs/conc.toml", "--grid", "full", "--workers", "1", env=env, cwd=root)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "trained 0 trials" in r.stdout  # panels (b) and (c) share the stored trials

    r = repro("verify", "specs/conc.toml", "--grid", "full", env=env, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "conc: nothing to check" in r.stdout, r.stdout
    assert "golden" not in r.stderr, r.stderr
    r = repro("verify", "specs/conc.toml", "--grid", "full", "--json", env=env, cwd=root)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr

    r = repro("report", "specs/conc.toml", "--grid", "full", "--out", "report", env=env, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (root / "report" / "index.html").read_text()
    assert "K* of panel (b)" in page and "K* of panel (c)" in page
    assert 'class="kstar"' in page  # a table of measured K*, not only "not run" notes
    assert "nothing to check" in page.lower()
    assert "K* of panel (b)" in (root / "report" / "report.md").read_text()


def test_a_golden_file_is_needed_by_claims_and_validated_whenever_it_is_there(tmp_path, capsys):
    """No training: a spec with claims and no golden file, and a spec without claims whose
    golden file is malformed, are still usage errors (exit 2, one line naming file and key)."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "golden").mkdir()
    claimed = tmp_path / "specs" / "claimed.toml"
    claimed.write_text(spec_text("claimed", ["sparse_slower"], panels=(("b", 32),)))
    plain = tmp_path / "specs" / "plain.toml"
    plain.write_text(spec_text("plain", [], panels=(("b", 32),)))
    results = tmp_path / "results"
    out = ["--out", str(tmp_path / "report")]
    for command in ("verify", "report"):
        assert cli.main([command, str(claimed), "--grid", "full", "--results", str(results),
                         *(out if command == "report" else [])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "golden/claimed.toml" in err[0] and "golden file not found" in err[0], err
    (tmp_path / "golden" / "plain.toml").write_text('[sparse_slower]\nmin_ratio = "one"\n')
    for command in ("verify", "report"):
        assert cli.main([command, str(plain), "--grid", "full", "--results", str(results),
                         *(out if command == "report" else [])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "golden/plain.toml" in err[0] and "sparse_slower" in err[0], err
    (tmp_path / "golden" / "plain.toml").unlink()
    assert cli.main(["verify", str(plain), "--grid", "full", "--results", str(results)]) == 0
    assert "plain: nothing to check" in capsys.readouterr().out
    assert not results.exists() and not (tmp_path / "report").exists()  # nothing written
