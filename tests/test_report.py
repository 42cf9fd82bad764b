"""Tests for repro.report (`python -m repro report`) on SYNTHETIC results; nothing is trained.

The project laid out in a temporary folder has three specs copied from specs/ with their golden
files: Figure 1 with a SYNTHETIC results file written by the store's own writer (K* = c1/B + c2,
panel (d) not run, one point where no trial reached the goal, a figure PNG), Figure 6 (a
smoothness figure) with a SYNTHETIC hand-built smoothness dataset, and Figure 2 with no results.
The page is parsed with html.parser; no browser is needed.
"""
import dataclasses
import html.parser
import json
import os
import pathlib
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from repro import __main__ as cli  # noqa: E402
from repro import claims, evidence, fmt, plan as plan_mod, report, report_html, report_markdown  # noqa: E402
from repro import report_model, spec as spec_mod, store, verify  # noqa: E402
from repro.errors import UsageError  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGS = ("figure-1", "figure-2", "figure-6")
N_BOOT = 20


# ------------------------------------------------------------------ a synthetic project

def figure1_records(sp):
    """SYNTHETIC trial records for Figure 1's reduced grid: K* = c1/B + c2 (dense c1 20000,
    c2 50; 90 % sparse 2.5x, 2x, but 0.2x at panel (a), so that its sparse_slower FAILs); trial t
    takes 7t steps more and has lr 0.01 (t + 1).
    Panel (d) (CIFAR-10) is not run; at panel (a), s=0.9, B=16 no trial reaches the goal."""
    plan = plan_mod.compile_plan(sp, "reduced")
    recs = {}
    for pp in plan.panels:
        if pp.panel.id == "d":
            continue
        for s, b in pp.points:
            c1, c2 = (20000, 50) if s == 0 else (4000, 10) if pp.panel.id == "a" else (50000, 100)
            for t in range(pp.grid.trials):
                k = int(c1 / b + c2) + 7 * t
                miss = pp.panel.id == "a" and s == 0.9 and b == 16
                recs[(pp.panel.id, s, b, t)] = {
                    "status": "incomplete" if miss else "complete", "steps_to_result": None if miss else k,
                    "steps": 12000 if miss else k, "eval_steps": [k // 2, k],
                    "val_errors": [0.5, 0.5 if miss else 0.01],
                    "wall_time": 2.0, "cap": None,
                    "values": {"learning_rate": 0.01 * (t + 1),
                               **({} if pp.panel.optimizer == "sgd" else {"momentum": 0.9})}}
    return plan, recs


def figure6_dataset(sp):
    """SYNTHETIC smoothness dataset (layout of repro.smoothness_run.collect): panel (a) complete,
    its final loss rising with sparsity; panel (b) not run."""
    pids, sparsities, steps = ["a", "b"], [0.0, 0.5, 0.7, 0.9], [0, 400, 800, 1200, 1600]
    loss = np.full((2, 4, 5), np.nan)
    loss[0] = np.array([0.5, 0.6, 0.7, 0.9])[:, None] * np.linspace(4, 1, 5)[None]
    final = np.full((2, 4), np.nan)
    final[0] = [0.5, 0.6, 0.7, 0.9]
    status = np.array([["complete"] * 4, ["not_run"] * 4])
    ds = xr.Dataset(
        {"train_loss": (("panel", "sparsity", "step"), loss),
         "final_loss": (("panel", "sparsity"), final),
         "wall_time": (("panel", "sparsity"), np.where(status == "complete", 100.0, np.nan)),
         "status": (("panel", "sparsity"), status)},
        coords={"panel": pids, "sparsity": sparsities, "step": steps,
                "dataset": ("panel", ["mnist", "cifar10"]), "model": ("panel", ["simple_cnn", "resnet8"]),
                "optimizer": ("panel", ["sgd", "sgd"])})
    ds.attrs.update(store.provenance(sp))
    ds.attrs.update(grid="reduced", kind="smoothness")
    return ds


def make_project(root: pathlib.Path, figure_png=True):
    """specs/, golden/, results/ (SYNTHETIC, current) and figures/ under `root`."""
    (root / "specs").mkdir(parents=True)
    (root / "golden").mkdir()
    for f in FIGS:
        shutil.copy(ROOT / "specs" / f"{f}.toml", root / "specs")
        shutil.copy(ROOT / "golden" / f"{f}.toml", root / "golden")
    sp1 = spec_mod.load_spec(root / "specs" / "figure-1.toml")
    plan, recs = figure1_records(sp1)
    ds = store.collect(sp1, plan, {k: store.TrialRecord.from_json(v) for k, v in recs.items()})
    ds.attrs.update(trials_trained=100, trials_reused=44, run_wall_seconds=123.4)  # as `repro run` writes
    store.write_dataset(ds, root / "results" / "figure-1.nc")
    sp6 = spec_mod.load_spec(root / "specs" / "figure-6.toml")
    store.write_dataset(figure6_dataset(sp6), root / "results" / "figure-6.nc")
    (root / "figures").mkdir()
    for f in ("figure-1", "figure-6") if figure_png else ("figure-6",):
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([1, 2], [2, 1])
        fig.savefig(root / "figures" / f"{f}.png")
        plt.close(fig)
    return root


class Page(html.parser.HTMLParser):
    """The parts of the page the tests read: images, links, claim rows, K* and fit tables."""

    def __init__(self, text):
        super().__init__()
        self.images, self.links, self.rows, self.fits, self.kstar = [], [], [], [], []
        self._row = self._cell = None
        self._classes = []
        self.text = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "tr" and a.get("class") in ("claim", "fit"):
            self._row = {"attrs": a, "cells": {}, "tds": []}
            (self.rows if a["class"] == "claim" else self.fits).append(self._row)
        if tag == "table" and a.get("class") == "kstar":
            self.kstar.append([])
        if self._row is not None and tag == "td":
            self._row["tds"].append("")
        if self._row is not None and tag in ("td", "span", "code", "b"):
            self._classes.append(a.get("class", "") or "")

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if self._row is not None and tag in ("td", "span", "code", "b") and self._classes:
            self._classes.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._row is None:
            return
        if self._row["tds"]:
            self._row["tds"][-1] += data
        for cls in self._classes:
            for name in cls.split():
                self._row["cells"][name] = self._row["cells"].get(name, "") + data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("project"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rep = report.build_report("specs", out="report", n_boot=N_BOOT)
        specs = spec_mod.load_specs("specs")
        verdicts = json.loads(claims.to_json(verify.verify_specs(specs)))
    finally:
        os.chdir(cwd)
    page = Page((root / "report" / "index.html").read_text())
    return root, rep, page, specs, verdicts


# ------------------------------------------------------------------ what the page shows

def test_every_claim_of_every_spec_has_one_row(built):
    root, rep, page, specs, _ = built
    wanted = sorted((sp.id, p.id, c) for sp in specs for p in sp.panels for c in p.claims)
    got = sorted((r["attrs"]["data-figure"], r["attrs"]["data-panel"], r["attrs"]["data-claim"])
                 for r in page.rows)
    assert got == wanted and len(got) > 20


def test_rows_match_verify_json(built):
    root, rep, page, specs, verdicts = built
    rows = {(r["attrs"]["data-figure"], r["attrs"]["data-panel"], r["attrs"]["data-claim"]): r for r in page.rows}
    assert {v["status"] for v in verdicts} >= {"PASS", "FAIL", "NOT-RUN"}  # the fixture exercises them
    for v in verdicts:
        row = rows[(v["figure"], v["panel"], v["claim"])]
        assert row["attrs"]["data-status"] == v["status"]
        assert v["status"] in row["cells"]["verdict"]
        assert row["cells"]["measured"] == v["measured"]
        assert row["cells"]["tolerance"] == v["tolerance"]
        assert row["cells"].get("notes", "").startswith(v["detail"])
        if v["paper"]:
            assert row["cells"].get("paper") == v["paper"]
        if v["source"]:
            assert row["cells"]["source"] == v["source"]
    # claims.json in the folder is what `verify --json` prints for the same inputs
    assert json.loads((root / "report" / "claims.json").read_text()) == verdicts


def test_paper_and_source_fall_back_to_the_golden_file(built):
    root, rep, page, specs, verdicts = built
    golden = claims.load_golden(root / "golden" / "figure-1.toml")
    row = next(r for r in page.rows if r["attrs"]["data-figure"] == "figure-1"
               and r["attrs"]["data-panel"] == "b" and r["attrs"]["data-claim"] == "sparse_c1_larger")
    assert row["cells"]["source"] == golden["sparse_c1_larger"]["source"]
    assert "1.67" in row["cells"]["paper"]


def test_summary_counts_per_figure_and_verdict(built):
    root, rep, page, specs, verdicts = built
    text = (root / "report" / "index.html").read_text()
    for fig in FIGS:
        assert f'data-figure="{fig}"' in text
    counts = {k: sum(v["status"] == k for v in verdicts) for k in claims.VERDICTS}
    assert rep.counts() == counts
    for k, n in counts.items():
        assert f'<span class="verdict {k}">{n} {k}</span>' in text


def test_not_run_rows_carry_the_command_that_runs_them(built):
    root, rep, page, specs, verdicts = built
    not_run = [r for r in page.rows if r["attrs"]["data-status"] == "NOT-RUN"]
    assert len(not_run) >= 10
    for r in not_run:
        assert "python -m repro " in r["cells"]["notes"], r
    missing = [r for r in not_run if r["attrs"]["data-figure"] == "figure-2"]
    assert missing and all("python -m repro run specs/figure-2.toml" in r["cells"]["notes"] for r in missing)


def test_every_image_exists_and_each_drawn_figure_is_shown(built):
    root, rep, page, specs, verdicts = built
    out = root / "report"
    assert page.images
    for src in page.images:
        assert not src.startswith(("/", "http", "file:"))  # opens from disk, folder self-contained
        assert (out / src).is_file() and (out / src).stat().st_size > 100
    assert set(page.images) == {"figures/figure-1.png", "figures/figure-6.png"}
    assert (out / "figures" / "figure-1.png").read_bytes() == (root / "figures" / "figure-1.png").read_bytes()
    text = "".join(page.text)
    assert "python -m repro run specs/figure-2.toml" in text  # no figure-2 results: how to get them


def test_links_to_the_results_files_resolve(built):
    root, rep, page, specs, verdicts = built
    nc = [h for h in page.links if h.endswith(".nc")]
    assert {pathlib.Path(h).name for h in nc} == {"figure-1.nc", "figure-6.nc"}
    for h in nc:
        assert (root / "report" / h).resolve().is_file()
    md = (root / "report" / "report.md").read_text()
    snippet = md.split("```python\n")[1].split("```")[0]
    assert "xr.open_dataset(" in snippet and "repro" not in snippet
    cwd = os.getcwd()
    os.chdir(root)
    try:
        exec(compile(snippet, "open-it-yourself", "exec"), {})  # plain xarray opens the results
    finally:
        os.chdir(cwd)


def test_kstar_tables_hold_the_results_and_best_trials(built):
    root, rep, page, specs, verdicts = built
    ds = store.open_results(root / "results" / "figure-1.nc")
    section = next(s for s in rep.sections if s.spec.id == "figure-1")
    assert [t.panel for t in section.kstar] == ["a", "b", "c", "d"]
    assert len(page.kstar) == 3  # panel (d) is not in the results: a note, no table
    for t in section.kstar[:3]:
        for (s, b), cell in t.cells.items():
            k = float(ds["steps_to_result"].sel(panel=t.panel, sparsity=s, batch_size=b))
            if np.isnan(k):
                assert cell.k is None
            else:
                assert cell.k == k and f"{k:,.0f}" == cell.text
                assert cell.sub.startswith("trial 0: lr 0.01")  # trial 0 is fastest, lr 0.01
    a = section.kstar[0].cells[(0.9, 16)]
    assert a.k is None and a.sub == "none of 6 trials reached the goal: 6 missed"
    text = "".join(page.text)
    assert "none of 6 trials reached the goal: 6 missed" in text and "trial 0: lr 0.01, m 0.9; 6 reached" in text
    assert not any(s.kstar for s in rep.sections if s.spec.kind in spec_mod.SMOOTHNESS_KINDS)


def test_fits_with_intervals_match_the_analysis(built):
    root, rep, page, specs, verdicts = built
    ds = store.open_results(root / "results" / "figure-1.nc")
    fits = evidence.fit_intervals(ds, "b", n_boot=N_BOOT)
    rows = [r for r in page.fits if r["tds"][0] == "b"]
    assert len(rows) == 2
    for r in rows:
        f = fits[float(r["tds"][1])]
        assert r["tds"][2] == fmt.number(f["c1"]) and r["tds"][6] == fmt.number(f["b_crit"])
        assert r["tds"][3] == fmt.interval(f["ci"]["c1"]) != fmt.MISSING


def test_provenance(built):
    root, rep, page, specs, verdicts = built
    text = "".join(page.text)
    md = (root / "report" / "report.md").read_text()
    sp = next(s for s in specs if s.id == "figure-1")
    assert sp.sha256[:12] in text and sp.sha256 in md
    assert report.sha256(root / "results" / "figure-1.nc") in md
    assert "Not complete: 144 of 192 trials stored (panel (d) not run)" in text  # CIFAR-10 panel
    assert "Not complete: 144 of 192 trials stored (panel (d) not run)" in md
    assert "100 / 44" in text and "123 s (2.1 min)" in text  # trained / reused, run wall time
    assert f"{os.cpu_count()} cores" in text and "xarray" in text and "commit" in text
    assert "`results/figure-2.nc`: missing. Run: `python -m repro run specs/figure-2.toml`" in md


def test_markdown_has_every_figure_and_claim(built):
    root, rep, page, specs, verdicts = built
    md = (root / "report" / "report.md").read_text()
    for sp in specs:
        assert f"## {sp.id}" in md
    claim_rows = [ln for ln in md.splitlines() if ln.startswith("| ")
                  and ln.split(" | ")[2].strip("*") in claims.VERDICTS]
    assert len(claim_rows) == len(verdicts)
    assert "![figure-1](figures/figure-1.png)" in md


def test_exit_status_follows_the_verdicts(built):
    root, rep, page, specs, verdicts = built
    assert any(v["status"] == "FAIL" for v in verdicts)  # panel (a)'s sparse network is 5x faster
    assert rep.exit_code == 1 == claims.exit_code([claims.ClaimResult(**v) for v in verdicts])


# ------------------------------------------------------------------ stale, missing, safety

def run_cli(monkeypatch, root, *args):
    monkeypatch.chdir(root)
    return cli.main(["report", *args, "--n-boot", str(N_BOOT)])


def test_stale_results_are_on_the_page_and_exit_2(tmp_path, capsys, monkeypatch):
    root = make_project(tmp_path / "p")
    spec = root / "specs" / "figure-1.toml"
    spec.write_text(spec.read_text() + "\n# edited after its run\n")
    code = run_cli(monkeypatch, root, "specs")
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "results/figure-1.nc" in lines[0] and "spec_sha256" in lines[0]
    page = Page((root / "report" / "index.html").read_text())
    text = "".join(page.text)
    assert "Some results files are not current" in text and "python -m repro collect" in text
    rows = [r for r in page.rows if r["attrs"]["data-figure"] == "figure-1"]
    assert rows and all(r["attrs"]["data-status"] == "NOT-RUN" for r in rows)
    assert all("not current" in r["cells"]["notes"] for r in rows)
    assert "NOT CURRENT" in text  # in the summary table
    assert "not current" in (root / "report" / "report.md").read_text()
    assert cli.main(["verify", "specs/figure-1.toml"]) == 2  # verify refuses the same file


def test_altered_results_file_is_not_current_either(tmp_path, capsys, monkeypatch):
    root = make_project(tmp_path / "p")
    path = root / "results" / "figure-1.nc"
    ds = xr.load_dataset(path)
    ds["steps_to_result"][:] = ds["steps_to_result"] / 2  # trials_sha256 no longer matches
    store.write_dataset(ds, path)
    assert run_cli(monkeypatch, root, "specs") == 2
    assert "altered or damaged" in capsys.readouterr().err
    text = "".join(Page((root / "report" / "index.html").read_text()).text)
    assert "Results not current" in text and "altered or damaged" in text


def test_missing_figure_is_drawn_from_current_results(tmp_path, capsys, monkeypatch):
    root = make_project(tmp_path / "p", figure_png=False)
    code = run_cli(monkeypatch, root, "specs/figure-1.toml")
    out, _ = capsys.readouterr()
    assert code in (0, 1) and "wrote" in out
    page = Page((root / "report" / "index.html").read_text())
    assert page.images == ["figures/figure-1.png"]
    assert (root / "report" / "figures" / "figure-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "drawn for this report" in "".join(page.text) and "python -m repro plot" in "".join(page.text)
    assert not (root / "figures" / "figure-1.png").exists()  # the report writes only its folder


def test_only_missing_results_exit_0_and_a_rebuild_replaces_the_folder(tmp_path, capsys, monkeypatch):
    root = make_project(tmp_path / "p")
    assert run_cli(monkeypatch, root, "specs/figure-2.toml") == 0  # all NOT-RUN: not an error, as in verify
    (root / "report" / "index.png").write_bytes(b"old screenshot")
    assert run_cli(monkeypatch, root, "specs/figure-2.toml") == 0
    assert not (root / "report" / "index.png").exists()  # replaced whole
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []  # no temp folders


def test_a_folder_not_written_by_report_is_never_replaced(tmp_path, capsys, monkeypatch):
    root = make_project(tmp_path / "p")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("keep me")
    assert run_cli(monkeypatch, root, "specs/figure-2.toml", "--out", "mine") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mine" in err[0]
    assert (root / "mine" / "notes.txt").read_text() == "keep me"


def test_a_failed_build_leaves_the_previous_report(tmp_path, monkeypatch):
    root = make_project(tmp_path / "p")
    monkeypatch.chdir(root)
    report.build_report("specs/figure-2.toml", out="report")
    before = (root / "report" / "index.html").read_text()
    monkeypatch.setattr(report, "render_markdown", lambda d: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        report.build_report("specs/figure-1.toml", out="report", n_boot=N_BOOT)
    assert (root / "report" / "index.html").read_text() == before
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


def test_bad_golden_file_is_a_usage_error_and_writes_nothing(tmp_path, capsys, monkeypatch):
    root = make_project(tmp_path / "p")
    (root / "golden" / "figure-1.toml").write_text("[linear_scaling]\npoints = 3\n")
    monkeypatch.chdir(root)
    with pytest.raises(UsageError, match="figure-1.toml"):
        report.build_report("specs", out="report")
    assert cli.main(["report", "specs"]) == 2
    assert not (root / "report").exists()


# ------------------------------------------------------------------ make targets

@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_report_and_report_check():
    out = subprocess.run(["make", "-n", "report", "report-check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "-m repro report specs" in out.stdout
    assert "chromium --headless" in out.stdout and "--screenshot=" in out.stdout
    assert "report/index.html" in out.stdout


# ------------------------------------------------------------------ cell texts

def test_machine_readable_statistic_and_interval_are_shown_when_a_claim_gives_them():
    r = claims.ClaimResult("figure-1", "b", "sparse_slower", "INCONCLUSIVE", "ratio 1.2 [0.9, 1.6]", "> 1",
                           values={"statistic": 1.2, "interval": [0.9, 1.6]}, paper="1.5-4.5", source="Fig. 12")
    assert report_model.statistic_text(r) == "statistic 1.2, interval [0.9, 1.6]"
    assert report_model.paper_text(r, {"paper_band": [1.5, 4.5]}) == "1.5-4.5"  # the claim's own text wins
    r.paper = ""
    assert report_model.paper_text(r, {"paper_band": [1.5, 4.5]}) == "1.5 to 4.5"
    assert report_model.paper_text(r, {"paper_ratios": {"delta": 1.0, "L": 3.09}}) == "delta x1, L x3.09"
    assert report_model.statistic_text(claims.ClaimResult("f", "a", "c", "PASS", "m", "t")) == ""


def test_not_run_without_a_command_in_its_detail_gets_one():
    sp = spec_mod.load_spec(ROOT / "specs" / "figure-1.toml")
    bare = claims.ClaimResult("figure-1", "c", "plateau", "NOT-RUN", "-", "-", detail="no tolerance for 'plateau'")
    assert report_model.run_command(bare, sp, "reduced", "results") == f"python -m repro run {sp.path} --panel c"
    assert report_model.run_command(bare, sp, "full", "elsewhere") == \
        f"python -m repro run {sp.path} --grid full --panel c --results elsewhere"
    has = claims.ClaimResult("figure-1", "d", "plateau", "NOT-RUN", "-", "-",
                             detail="no K*; run: python -m repro run specs/figure-1.toml --panel d")
    assert report_model.run_command(has, sp, "reduced", "results") == ""
    assert report_html.with_commands("x; run: python -m repro run a.toml --panel d (if missing)") == \
        "x; run: <code>python -m repro run a.toml --panel d</code> (if missing)"


# ------------------------------------------------------------------ one model, two renderers

def small_page(row):
    """A hand-built ReportPage: one figure with the claim row `row`, one K* table, one fit."""
    sp = spec_mod.load_spec(ROOT / "specs" / "figure-1.toml")
    fit = report_model.FitRow(figure=sp.id, panel="b", sparsity=0.9, c1=50039.0, c2=99.21, b_crit=504.4,
                              rms_log_residual=0.001, n_points=4, ci={"c1": (48309.0, 50274.0), "c2": (90.0, 110.0),
                                                                      "b_crit": (400.0, 600.0)},
                              n_boot=20, uncertainty="trials", b_crit_direct=1024.0)
    short = dataclasses.replace(fit, sparsity=0.5, n_points=2)
    table = report_model.KStarTable(panel="b", title="MNIST", goal=0.02, trials=6, batch_sizes=[16],
                                    sparsities=[0.9], cells={(0.9, 16): report_model.KStarCell(3137.0, "3,137", "trial 0: lr 0.01")})
    section = report_model.FigureSection(
        sp, pathlib.Path("results/figure-1.nc"), report_model.CURRENT, results_link="../results/figure-1.nc",
        claim_rows=[row], spec_file="specs/figure-1.toml", golden_file="golden/figure-1.toml",
        unchecked=["figure-1 panel (d): nothing to check (it declares no claims)"], image_note="no figure yet",
        kstar=[table], fits=report_model.FitTable((fit, short)))
    return report_model.ReportPage(title="A title", grid="reduced", built="today", command="python -m repro report",
                                   sections=[section], problems=[], code={"commit": "abc", "dirty": "no"},
                                   machine={"cores": 2, "cpu": "cpu", "memory": "1 GiB", "devices": "CPU only",
                                            "platform": "linux", "python": "3"},
                                   packages={"numpy": "2"}, seconds=1.0)


def test_the_html_page_and_the_markdown_are_laid_out_from_one_model():
    row = report_model.ClaimRow(figure="figure-1", panel="b", claim="sparse_slower", status="PASS",
                                measured="ratio 2.50 [2.31, 2.71]", statistic="statistic 2.5", tolerance="> 1",
                                paper="1.5 to 4.5", source="Fig. 12", detail="", run_command="")
    changed = dataclasses.replace(row, status="FAIL", measured="ratio 0.20 [0.18, 0.23]",
                                  detail="sparse is faster", run_command="python -m repro run x.toml --panel b")
    for claim in (row, changed):
        page = small_page(claim)
        text = "".join(Page(report_html.render_html(page)).text)
        md = report_markdown.render_markdown(page)
        rows = Page(report_html.render_html(page)).rows
        assert [r["attrs"]["data-status"] for r in rows] == [claim.status]
        for shown in (claim.measured, claim.statistic, claim.tolerance, claim.paper, claim.source,
                      claim.detail, claim.run_command, f"1 {claim.status}",
                      "3,137", "trial 0: lr 0.01", "50,039", "[48,309, 50,274]",  # K* cell, fit row
                      "panel (b) s=0.5 has 2", "nothing to check (it declares no claims)"):
            assert shown in text and shown in md, shown
        other = changed if claim is row else row
        assert other.measured not in text and other.measured not in md


def test_fits_prints_the_rows_of_the_report_model(built, monkeypatch, capsys):
    root, rep, page, specs, verdicts = built
    monkeypatch.chdir(root)
    assert cli.main(["fits", "specs/figure-1.toml", "--json", "--n-boot", str(N_BOOT)]) == 0
    printed = json.loads(capsys.readouterr().out)  # strict JSON: NaN is null
    section = next(s for s in rep.sections if s.spec.id == "figure-1")
    assert printed == json.loads(fmt.to_json([dataclasses.asdict(f) for f in section.fits.rows]))
    assert [(r["panel"], r["sparsity"]) for r in printed] == [(p, s) for p in "abc" for s in (0.0, 0.9)]
    assert {r["direct_factor"] for r in printed} == {report_model.DIRECT_FACTOR} == {2.0}
    assert any(r["b_crit_direct"] is None for r in printed)  # panel (a) never leaves linear scaling by 2x
    assert cli.main(["fits", "specs/figure-1.toml", "--n-boot", str(N_BOOT)]) == 0
    table = capsys.readouterr().out.splitlines()
    row = section.fits.rows[2]  # panel (b), dense
    assert f"{fmt.number(row.c1, 4):>10s} {fmt.interval(row.ci['c1']):>22s}" in table[3]
    assert table[-1].startswith(f"(fits of K* = c1/B + c2 in log space; intervals: {N_BOOT} replicates")
