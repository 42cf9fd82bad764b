"""The documentation a newcomer reads is checked against what runs.

Every `python -m repro ...` line in a fenced shell block of the Markdown files is parsed by the
real command-line parser; the README's `verify --table` example and the xarray snippet of
docs/results-format.md are run; the spec reference's "Complete example" is Figure 1's own text;
every option has a help string; `--version` and `--strict` do what the docs say; no commit
hash or issue number is left in user-facing text. The new-study walk-through is run by
tests/test_new_spec.py.
"""
import argparse
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from repro import __main__ as cli
from repro import __version__, claims
from repro import data as data_mod
from repro import spec as spec_mod

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "specs" / "README.md", ROOT / "golden" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]


def fenced(path, lang):
    """The fenced code blocks of one language in a Markdown file, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(), re.S | re.M)


def repro_lines(path):
    """Each `python -m repro ...` line of the file's shell blocks, as argv after `python -m repro`."""
    out = []
    for block in fenced(path, "sh"):
        for line in block.splitlines():
            if line.startswith("python -m repro"):
                argv = shlex.split(line, comments=True)
                assert argv[:3] == ["python", "-m", "repro"], line
                out.append((line, argv[3:]))
    return out


def test_the_readme_shows_every_command():
    commands = {argv[0] for _, argv in repro_lines(ROOT / "README.md") if not argv[0].startswith("-")}
    subparsers = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) <= commands, set(subparsers.choices) - commands


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_line_parses(path):
    """The real parser accepts each line as written, and every file it names exists."""
    for line, argv in repro_lines(path):
        if argv == ["--version"]:
            continue  # exits from inside the parser: test_version
        try:
            args = cli.parser().parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"{path.name}: {line!r} does not parse (exit {e.code})")
        for value in (getattr(args, "spec", None), getattr(args, "table", None),
                      getattr(args, "golden", None), *getattr(args, "names", [])[:1]):
            if value and re.match(r"(specs|golden|docs)/", str(value)):
                assert (ROOT / value).exists(), f"{path.name}: {line!r} names {value}, which is missing"


def test_make_targets_in_the_readme_exist():
    makefile = (ROOT / "Makefile").read_text()
    for block in fenced(ROOT / "README.md", "sh"):
        for line in block.splitlines():
            if line.startswith("make "):
                target = line.split()[1]
                if target.startswith("figure-"):
                    assert (ROOT / "specs" / f"{target}.toml").exists(), line
                else:
                    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), line


def test_readme_verify_example_is_what_verify_prints():
    """The README's verify example: its command runs and prints the table shown (its claims and
    columns; the verdicts are the verifier's to change)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Reading the output", 1)[1]
    command = re.search(r"```sh\n(python -m repro verify --table .*?)\n```", section).group(1)
    shown = re.search(r"```\n(FIGURE .*?)```", section, re.S).group(1)
    out = subprocess.run([sys.executable, "-m", "repro", *shlex.split(command)[3:]], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr

    def rows(table):
        lines = table.splitlines()
        return lines[0].split(), [ln.split()[2] for ln in lines[2:] if ln.startswith("figure")]

    assert rows(out.stdout) == rows(shown)


def test_the_complete_example_is_figure_1_panel_b(tmp_path):
    """specs/README.md's "Complete example" is specs/figure-1.toml's [figure] table and panel (b), verbatim."""
    (block,) = fenced_after(ROOT / "specs" / "README.md", "## Complete example", "toml")[:1]
    spec_text = (ROOT / "specs" / "figure-1.toml").read_text()
    figure = spec_text[spec_text.index("[figure]"):spec_text.index("[[panel]]")]
    panel_b = next(p for p in spec_text.split("[[panel]]")[1:] if p.lstrip("\n").startswith('id = "b"'))
    assert block == figure + "[[panel]]" + panel_b.rstrip("\n") + "\n"
    path = tmp_path / "figure-1.toml"
    path.write_text(block)
    doc, real = spec_mod.load_spec(path), spec_mod.load_spec(ROOT / "specs" / "figure-1.toml")
    assert doc.panels == tuple(p for p in real.panels if p.id == "b")


def fenced_after(path, heading, lang):
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text().split(heading, 1)[1], re.S | re.M)


def test_golden_readme_minimal_file_is_the_new_study_one_and_loads(tmp_path):
    (minimal,) = fenced(ROOT / "golden" / "README.md", "toml")[:1]
    assert minimal in fenced(ROOT / "docs" / "new-study.md", "toml")
    path = tmp_path / "minimal.toml"
    path.write_text(minimal)
    assert claims.load_golden(path)["sparse_slower"]["min_ratio"] == 1.0


def _walk(parser, prog="python -m repro"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield prog, action


def test_every_option_has_help():
    missing = [f"{prog} {'/'.join(a.option_strings) or a.dest}" for prog, a in _walk(cli.parser())
               if not (a.help or "").strip()]
    assert missing == []
    subparsers = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in subparsers._choices_actions)  # every command too


def test_help_has_no_history():
    """No issue numbers or commit hashes in --help or in the docs a user reads."""
    texts = {"--help": cli.parser().format_help()}
    for prog, action in _walk(cli.parser()):
        texts[f"{prog} {action.dest}"] = action.help or ""
    texts.update({str(p.relative_to(ROOT)): p.read_text() for p in DOCS})
    texts["scripts/gpu-check"] = (ROOT / "scripts" / "gpu-check").read_text()
    for where, text in texts.items():
        assert not re.search(r"\bissues? \d+", text, re.I), where
        hashes = [h for h in re.findall(r"\b[0-9a-f]{7,40}\b", text)
                  if re.search(r"[a-f]", h) and re.search(r"[0-9]", h)]
        assert hashes == [], (where, hashes)


def test_version(capsys):
    import tomllib
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"repro {__version__}\n"
    assert __version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _result(status, claim="c"):
    return claims.ClaimResult(figure="figure-1", panel="b", claim=claim, status=status,
                              measured="-", tolerance="-")


@pytest.mark.parametrize("statuses, plain, strict", [
    (["PASS", "PASS"], 0, 0),
    (["PASS", "FAIL"], 1, 1),
    (["PASS", "INCONCLUSIVE"], 0, 1),
    (["PASS", "NOT-RUN"], 0, 1),
    (["NOT-RUN", "NOT-RUN"], 0, 1),
])
def test_strict_fails_unless_every_claim_is_decided(monkeypatch, capsys, statuses, plain, strict):
    from repro import verify
    results = [_result(s, f"c{i}") for i, s in enumerate(statuses)]
    monkeypatch.setattr(verify, "verify_specs", lambda *a, **k: results)
    assert cli.main(["verify", "specs/figure-1.toml"]) == plain
    assert cli.main(["verify", "specs/figure-1.toml", "--strict"]) == strict
    capsys.readouterr()


def test_strict_on_a_figure_never_run_exits_1(tmp_path, capsys):
    """Every claim NOT-RUN (no results file): plain verify exits 0, --strict 1."""
    none = str(tmp_path / "none")
    assert cli.main(["verify", "specs/figure-1.toml", "--results", none]) == 0
    assert cli.main(["verify", "specs/figure-1.toml", "--results", none, "--strict"]) == 1
    assert "NOT-RUN" in capsys.readouterr().out


def test_data_ready_does_what_its_help_says(monkeypatch, capsys, tmp_path):
    """Exit 1 only when none of the spec's datasets is present; some missing: exit 0."""
    help_text = next(a.help for p, a in _walk(cli.parser()) if p.endswith(" data") and a.dest == "action")
    assert "exit 1 when none" in help_text
    rows = {"mnist": True, "fashion_mnist": False, "cifar10": False}
    monkeypatch.setattr(data_mod, "status", lambda: [
        {"name": n, "present": present, "how": f"python -m repro data fetch {n}"} for n, present in rows.items()])
    assert cli.main(["data", "ready", "specs/figure-1.toml"]) == 0  # mnist is here
    rows["mnist"] = False
    assert cli.main(["data", "ready", "specs/figure-1.toml"]) == 1  # none is
    capsys.readouterr()


def test_readme_is_short():
    """Readable in ten minutes (about 2,000 words); reference material lives in docs/."""
    assert len((ROOT / "README.md").read_text().split()) < 2000


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_results_or_caches_are_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    # a results folder, a cache folder or a results/cache file, wherever it lies (a test module
    # named after what it tests, tests/test_study_results.py, is neither)
    tracked = [f for f in files if re.search(r"(^|/)(results|cache)(/|$)|\.(nc|npz)$", f, re.I)]
    assert tracked == []


# --------------------------------------------------------------- the results-format snippet
TINY_FIGURE_1 = """\
[figure]
id = "figure-1"

[[panel]]
id = "b"
dataset = "mnist"
model = "simple_cnn"
optimizer = "sgd"
schedule = "constant"
goal_error = 0.01

[panel.search]
learning_rate = { min = 1e-3, max = 0.3, scale = "log" }

[panel.grid.full]
batch_sizes = [16, 64]
sparsities = [0.0, 0.5]
trials = 3
max_steps = 64
eval_every = 4

[panel.grid.reduced]
batch_sizes = [16, 64]
sparsities = [0.0, 0.5]
trials = 3
max_steps = 64
eval_every = 4
why = "a test: seconds on synthetic data"
"""


def test_reading_results_snippet_runs_on_what_repro_run_wrote(tmp_path, monkeypatch, capsys):
    """docs/results-format.md's xarray and pandas lines, run as written in a folder where
    `repro run` (in this process, on synthetic data) wrote results/figure-1.nc."""
    from conftest import make_data
    from repro import run
    data = make_data(n_train=64, n_val=1000)
    monkeypatch.setattr(data_mod, "load", lambda name: data)
    monkeypatch.setattr(data_mod, "require", lambda name: None)
    monkeypatch.setattr(run, "_WORKLOADS", {})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "figure-1.toml").write_text(TINY_FIGURE_1)
    assert cli.main(["run", "figure-1.toml", "--workers", "1"]) == 0
    assert (tmp_path / "results" / "figure-1.nc").exists()
    capsys.readouterr()
    (snippet,) = fenced_after(ROOT / "docs" / "results-format.md", "## Reading results", "python")[:1]
    exec(compile(snippet, "results-format.md", "exec"), {"__name__": "snippet"})
    out = capsys.readouterr().out
    assert "figure-1 reduced" in out and "batch_size" in out and "eval_step" in out, out
    # the README's two lines say the same
    (readme,) = fenced(ROOT / "README.md", "python")
    exec(compile(readme, "README.md", "exec"), {"__name__": "snippet"})
    assert "sparsity" in capsys.readouterr().out
