"""docs/new-study.md, followed as written: a new, non-paper study runs end to end.

The test saves the walk-through's spec and golden file at the paths it names, in an empty
folder, and runs its command lines verbatim (`python` is this interpreter): plan, run on REAL
Fashion-MNIST on the `tiny` grid, plot, verify. The files and outputs the text promises must be
there. The doc cannot drift from what runs.
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
import xarray as xr

from repro import data as data_mod
from repro import spec as spec_mod
from repro import verify as verify_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "new-study.md"


def saved_files():
    """{path: text} for each "Save it as `path`:" followed by a toml block."""
    found = re.findall(r"Save it as\s+`([^`]+)`:\s*\n\s*```toml\n(.*?)^```", DOC.read_text(), re.S | re.M)
    return dict(found)


def command_lines():
    section = DOC.read_text().split("## 3. Run, plot, verify", 1)[1]
    block = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M).group(1)
    return [line for line in block.splitlines() if line.strip()]


def write_files(folder):
    files = saved_files()
    assert set(files) == {"my-study/specs/my-study.toml",
                          "my-study/golden/fashion-nesterov-half-sparse.toml"}, files
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder / "my-study" / "specs" / "my-study.toml"


def test_new_study_files_load_and_the_golden_file_is_found(tmp_path):
    """Without data: the doc's spec loads, and verify finds its golden file where the doc says."""
    spec = spec_mod.load_spec(write_files(tmp_path))
    assert spec.id == "fashion-nesterov-half-sparse" and {"full", "tiny"} <= set(spec.panels[0].grids)
    assert verify_mod.golden_path(spec) == (tmp_path / "my-study" / "golden" / f"{spec.id}.toml").resolve()
    verify_mod.load_checked_golden(spec)  # every claim has its tolerance


def repro(line, cwd):
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "repro"], line
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=env)


@pytest.mark.skipif(not data_mod.cache_path("fashion_mnist").exists(),
                    reason="Fashion-MNIST not fetched (make data)")
def test_new_study_walk_through_runs_verbatim(tmp_path):
    write_files(tmp_path)
    lines = command_lines()
    assert [shlex.split(ln)[3] for ln in lines] == ["plan", "run", "plot", "verify"]
    out = {}
    for line in lines:
        r = repro(line, tmp_path)
        verb = shlex.split(line)[3]
        assert r.returncode in ((0, 1) if verb == "verify" else (0,)), (line, r.stdout[-2000:], r.stderr[-2000:])
        out[verb] = r.stdout
    assert "trained 8 trials" in out["run"]
    ds = xr.load_dataset(tmp_path / "results" / "fashion-nesterov-half-sparse.tiny.nc")
    assert ds.sizes["batch_size"] == 2 and list(ds["sparsity"].values) == [0.0, 0.5]
    assert (ds["status"] > 0).all()  # every trial ran and was recorded
    assert ds["steps_to_result"].notnull().all()  # goal 0.3 is reached at every point
    for suffix in ("png", "pdf"):
        assert (tmp_path / "figures" / f"fashion-nesterov-half-sparse.tiny.{suffix}").stat().st_size > 1000
    rows = [ln.split() for ln in out["verify"].splitlines() if ln.startswith("fashion-nesterov-half-sparse ")]
    assert [row[2] for row in rows] == ["sparse_slower"], out["verify"]
    assert rows[0][3] in ("PASS", "FAIL", "INCONCLUSIVE")
    # rerun: nothing is trained again, as the doc says
    again = repro(lines[1], tmp_path)
    assert again.returncode == 0 and "trained 0 trials" in again.stdout, again.stdout[-2000:]
    # the verdict as JSON, measured either way
    r = repro(lines[3] + " --json", tmp_path)
    (row,) = json.loads(r.stdout)
    assert row["claim"] == "sparse_slower" and row["measured"] != "-", row
