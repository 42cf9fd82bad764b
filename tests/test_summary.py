"""`repro summary`, the end of `make figure-N`: verdict counts, where things are, wall time and
what the exit status means. Reads no data and trains nothing (no results: NOT-RUN)."""
import pathlib

import pytest

from repro import __main__ as cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIG1 = str(ROOT / "specs" / "figure-1.toml")


def summary(capsys, tmp_path, *args):
    code = cli.main(["summary", FIG1, "--results", str(tmp_path / "results"),
                     "--figures", str(tmp_path / "figures"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_without_results_every_claim_is_not_run_and_says_where_things_will_be(tmp_path, capsys):
    code, out, _ = summary(capsys, tmp_path, "--seconds", "3725", "--status", "0")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "== figure-1 (reduced grid): finished in 1h02m05s, exit status 0 =="
    assert lines[1].startswith("verdicts: 0 PASS, 0 FAIL, 0 INCONCLUSIVE, ") and " NOT-RUN of " in lines[1]
    n = int(lines[1].split(" NOT-RUN of ")[0].rsplit(" ", 1)[1])
    assert n > 0 and lines[1].split(" NOT-RUN of ")[1].startswith(f"{n} claims")
    assert f"figure:   not drawn yet ({tmp_path / 'figures' / 'figure-1'}.png)" in out
    assert f"results:  {tmp_path / 'results' / 'figure-1.nc'} (not written yet)" in out
    assert "report/index.html" in out and "exit status 0: run, plot and verify finished" in out


def test_drawn_figures_are_listed(tmp_path, capsys):
    (tmp_path / "figures").mkdir()
    for ext in ("png", "pdf"):
        (tmp_path / "figures" / f"figure-1.{ext}").write_bytes(b"x")
    _, out, _ = summary(capsys, tmp_path)
    assert f"figure:   {tmp_path / 'figures' / 'figure-1.png'}, {tmp_path / 'figures' / 'figure-1.pdf'}" in out
    # another grid's files carry its name (figure-1.full.png): not the reduced grid's
    _, out, _ = summary(capsys, tmp_path, "--grid", "full")
    assert f"figure:   not drawn yet ({tmp_path / 'figures' / 'figure-1.full'}.png)" in out
    (tmp_path / "figures" / "figure-1.full.png").write_bytes(b"x")
    _, out, _ = summary(capsys, tmp_path, "--grid", "full")
    assert f"figure:   {tmp_path / 'figures' / 'figure-1.full.png'}\n" in out


@pytest.mark.parametrize("status,step,says", [
    (1, "verify", "a claim FAILed"),
    (1, "run", "`repro run` crashed"),
    (2, "run", "a usage error stopped `repro run`"),
    (130, "plot", "interrupted during `repro plot`"),
    (137, "run", "killed by signal 9"),
])
def test_each_exit_status_is_explained(tmp_path, capsys, status, step, says):
    code, out, _ = summary(capsys, tmp_path, "--status", str(status), "--step", step)
    assert code == 0 and says in out, out
    assert f"'Error {status}'" in out  # what make prints for it
    if step != "verify":
        assert "verdicts: none yet: `repro " + step + "` stopped the target" in out


@pytest.mark.parametrize("args,key", [(["--status", "256"], "--status"), (["--seconds", "-1"], "--seconds"),
                                      (["--step", "fit"], "--step")])
def test_bad_options_exit_2_in_one_line(tmp_path, capsys, args, key):
    code, out, err = summary(capsys, tmp_path, *args) if key != "--step" else (None, None, None)
    if key == "--step":
        with pytest.raises(SystemExit) as e:
            cli.main(["summary", FIG1, *args])
        code, err = e.value.code, capsys.readouterr().err
    assert code == 2 and key in err and len(err.strip().splitlines()) == 1, err
