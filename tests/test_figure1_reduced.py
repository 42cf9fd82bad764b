"""CI assertion: Figure 1(b)'s reduced grid, trained for real on MNIST, against its claims.

Runs `repro run --panel b` into a fresh results folder (48 of `make figure-1`'s 144 trials: the
README's Quick start gives the measured time of the whole figure), then
`repro verify --json`. No claim of panel (b) may FAIL (the data may not contradict the paper
beyond their uncertainty); every decided claim shows its interval; an INCONCLUSIVE claim says
what would decide it, as a request `repro decide` can act on. (This grid decides none of its
claims: its `why` in the spec says why and what would; CI asserts that nothing is FAILed and
that every undecided claim says what would decide it.)
"""
import json
import pathlib
import subprocess
import sys

import pytest

from repro import claims

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "figure-1.toml"


@pytest.mark.slow
def test_panel_b_reduced_grid_shows_its_claims(tmp_path):
    run = subprocess.run([sys.executable, "-m", "repro", "run", str(SPEC), "--panel", "b",
                          "--results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "figure-1.nc").exists()
    verify = subprocess.run([sys.executable, "-m", "repro", "verify", str(SPEC), "--results",
                             str(tmp_path), "--json"], cwd=ROOT, capture_output=True, text=True)
    rows = [r for r in json.loads(verify.stdout) if r["panel"] == "b"]
    print(json.dumps(rows, indent=1))
    spec_claims = {"linear_scaling", "diminishing_returns", "plateau", "sparse_slower",
                   "sparse_c1_larger", "sparse_critical_batch_no_smaller"}
    assert {r["claim"] for r in rows} == spec_claims
    assert verify.returncode == 0, verify.stderr
    for r in rows:
        assert r["status"] in (claims.PASS, claims.INCONCLUSIVE), r
        assert r["values"]["uncertainty"].startswith("evaluation quantisation, search resolution (6 trials)"), r
        if r["status"] == claims.INCONCLUSIVE:
            assert r["detail"], r  # what would decide it
            assert r["values"]["needs"], r  # ... as requests decide can price and run
