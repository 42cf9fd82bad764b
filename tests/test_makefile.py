"""The README's commands: `make figure-N` must really run, plot and verify (dry run here)."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("spec", sorted(p.stem for p in (ROOT / "specs").glob("figure-*.toml")))
def test_make_figure_runs_plots_and_verifies(spec):
    # make silently does nothing for a .PHONY target matched only by an implicit rule.
    out = subprocess.run(["make", "-n", spec], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for verb in ("run", "plot", "verify"):
        assert f"-m repro {verb} specs/{spec}.toml --grid reduced" in out.stdout, out.stdout
