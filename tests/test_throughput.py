"""Wall time for `repro plan --estimate`: the arithmetic (by hand), the probe's cache, the CLI.
No dataset is read: the probe trains on synthetic arrays."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from repro import throughput

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIG1 = ROOT / "specs" / "figure-1.toml"


# ---------------------------------------------------------------- arithmetic, numbers worked by hand
def test_step_seconds_interpolates_between_probed_batches():
    table = {16: 0.004, 64: 0.016, 256: 0.064}
    assert throughput.step_seconds(table, 64) == 0.016
    assert throughput.step_seconds(table, 32) == pytest.approx(0.008)   # 0.004 + 0.012 x 16/48
    assert throughput.step_seconds(table, 8) == 0.004                   # below: the smallest's time
    assert throughput.step_seconds(table, 1024) == pytest.approx(0.256)  # above: per example, 4 x 0.064


def test_wall_hours_one_and_several_workers():
    table = {"step_s": {16: 0.01, 64: 0.04}, "val_example_s": 1e-4}
    by_batch = {16: {"at_most": {"steps": 360_000, "examples_evaluated": 36_000_000},
                     "repro": {"steps": 36_000, "examples_evaluated": 0}},
                64: {"at_most": {"steps": 90_000, "examples_evaluated": 0},
                     "repro": {"steps": 0, "examples_evaluated": 0}}}
    # at_most: 360,000 x 0.01 s + 36e6 x 1e-4 s + 90,000 x 0.04 s = 3 x 3600 s; repro: 360 s
    one = throughput.wall_hours(by_batch, table, workers=1)
    assert one["at_most"] == pytest.approx(3.0) and one["repro"] == pytest.approx(0.1)
    four = throughput.wall_hours(by_batch, table, workers=4, devices=4)
    assert four["at_most"] == pytest.approx(0.75)


def test_wall_hours_places_a_large_batch_on_replicas():
    table = {"step_s": {4096: 1.0}, "val_example_s": 0.0}
    by_batch = {8192: {"at_most": {"steps": 3600, "examples_evaluated": 0}}}
    # 4 devices of 4096 examples: B = 8192 on 2 replicas at 1 s a step, holding 2 of 4 devices:
    # 3600 s x 2 devices / 4 = 1800 s
    assert throughput.wall_hours(by_batch, table, 4, 4, 4096)["at_most"] == pytest.approx(0.5)
    # one device holds it all: 2 s a step (extrapolated per example) x 3600 steps
    assert throughput.wall_hours(by_batch, table, 1, 1, 4096)["at_most"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="does not fit"):
        throughput.wall_hours({16384: by_batch[8192]}, table, 2, 2, 4096)


def test_probe_batches_every_fourfold_and_the_largest():
    assert throughput.probe_batches([2 ** k for k in range(1, 15)]) == [2, 8, 32, 128, 512, 2048, 8192, 16384]
    assert throughput.probe_batches([16, 64, 256, 1024]) == [16, 64, 256, 1024]
    assert throughput.probe_batches([16, 32, 64, 256]) == [16, 64, 256]


# ---------------------------------------------------------------- the cache
def _plan(panel="b", grid="reduced"):
    from repro import plan as plan_mod, spec as spec_mod
    return plan_mod.compile_plan(spec_mod.load_spec(FIG1), grid, [panel])


def test_probe_cache_is_written_atomically_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_prober(jobs):
        calls.append(jobs)
        out = {throughput.entry_key(m, d, b): {"step_s": 0.001 * b, "steps_timed": 10}
               for m, d, bs in jobs for b in bs}
        out.update({throughput.entry_key(m, d): {"val_example_s": 1e-4, "n_val": 6000, "pass_s": 0.6}
                    for m, d, _ in jobs})
        return out

    plan = _plan()
    found, src = throughput.tables(plan, tmp_path, prober=fake_prober)
    assert calls == [[("simple_cnn", "mnist", [16, 64, 256, 1024])]] and src["probed_now"]
    assert found[("simple_cnn", "28x28x1")]["step_s"] == {16: 0.016, 64: 0.064, 256: 0.256, 1024: 1.024}
    path = pathlib.Path(src["cache"])
    assert path.parent == tmp_path / "cache" and path.name.startswith("throughput-")
    assert path.name.endswith(f"-{src['device']}.json")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    again, src2 = throughput.tables(plan, tmp_path, prober=fake_prober)
    assert len(calls) == 1 and not src2["probed_now"] and again == found
    # panel (a) adds B = 32 (between probed sizes: interpolated) and nothing new to probe
    throughput.tables(_plan("a"), tmp_path, prober=fake_prober)
    assert len(calls) == 1
    # panel (c), Fashion-MNIST, has MNIST's input shape: the same model costs the same
    throughput.tables(_plan("c"), tmp_path, prober=fake_prober)
    assert len(calls) == 1
    # another TensorFlow version: the cache is ignored
    doc = json.loads(path.read_text())
    assert throughput.read_cache(path, doc["tensorflow"]) and not throughput.read_cache(path, "0.0")


def test_a_failed_cache_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "throughput-h-cpu.json"
    throughput.write_cache(path, "2.x", "cpu", {"m/d/eval": {"val_example_s": 1.0}})
    before = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("repro.atomic.os.replace", broken)
    with pytest.raises(OSError):
        throughput.write_cache(path, "2.x", "cpu", {"m/d/eval": {"val_example_s": 2.0}})
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == [path.name]


def test_probe_times_the_engine_on_synthetic_data(monkeypatch):
    """A race of R trials taking turns (state saved and loaded each chunk), as repro.race runs."""
    R = throughput.TRIALS_PER_RACE
    monkeypatch.setattr(throughput, "TARGET_S", 0.05)
    monkeypatch.setattr(throughput, "MAX_PROBE_STEPS", 4)
    out = throughput.probe([("simple_cnn", "mnist", [16, 32])])
    assert set(out) == {f"simple_cnn/28x28x1/B=16/race={R}", f"simple_cnn/28x28x1/B=32/race={R}", "simple_cnn/28x28x1/eval"}
    assert all(0 < v["step_s"] < 10 and 1 <= v["steps_timed"] <= 4 and v["steps_timed"] % R == 0
               for k, v in out.items() if "B=" in k)
    assert out["simple_cnn/28x28x1/eval"]["n_val"] == 6000 and out["simple_cnn/28x28x1/eval"]["val_example_s"] > 0
    # a batch size whose step would take over MAX_STEP_S at B = 16's time per example is not timed
    monkeypatch.setattr(throughput, "MAX_STEP_S", out[f"simple_cnn/28x28x1/B=16/race={R}"]["step_s"] * 100)
    big = throughput.probe([("simple_cnn", "mnist", [16, 8192])])
    assert f"simple_cnn/28x28x1/B=8192/race={R}" not in big and f"simple_cnn/28x28x1/B=16/race={R}" in big


def test_only_batches_a_cached_one_says_are_quick_enough_are_probed(tmp_path, monkeypatch):
    import tensorflow as tf
    from repro import devices
    kind = devices.device_kind()
    entries = {throughput.entry_key("simple_cnn", "mnist", 16): {"step_s": 0.005},
               throughput.entry_key("simple_cnn", "mnist", 64): {"step_s": 0.3},  # 4.8 s at B = 1024
               throughput.entry_key("simple_cnn", "mnist"): {"val_example_s": 1e-4}}
    throughput.write_cache(throughput.cache_path(tmp_path, kind), tf.__version__, kind, entries)
    calls = []
    throughput.tables(_plan(), tmp_path, prober=lambda jobs: calls.append(jobs) or {})
    assert calls == []  # 256 and 1024 are extrapolated from B = 64 (1.2 and 4.8 s a step)


# ---------------------------------------------------------------- the command line
def _seed_cache(results, step_s=0.01, val_example_s=0.0):
    import tensorflow as tf
    from repro import devices
    entries = {throughput.entry_key("simple_cnn", "mnist", b): {"step_s": step_s, "steps_timed": 1}
               for b in (16, 64, 256, 1024)}
    entries[throughput.entry_key("simple_cnn", "mnist")] = {"val_example_s": val_example_s,
                                                            "n_val": 6000, "pass_s": 0.0}
    throughput.write_cache(throughput.cache_path(results, devices.device_kind()), tf.__version__,
                           devices.device_kind(), entries)


def test_plan_estimate_prints_hours_from_the_cache(tmp_path, capsys, monkeypatch):
    from repro import __main__ as cli
    _seed_cache(tmp_path)
    monkeypatch.setattr(throughput, "probe_in_subprocess", lambda jobs: pytest.fail("probed again"))
    args = ["plan", str(FIG1), "--panel", "b", "--estimate", "--results", str(tmp_path), "--devices", "4"]
    assert cli.main(args + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    # 0.01 s a step at every B, nothing for evaluations: the reduced grid's 173,292 steps at most
    # (Figure 1(b): 2 sparsities x 6 trials x (6000 + 6000 + 1953 + 488) steps) = 1,732.92 s
    assert d["panels"][0]["steps_at_most"] == 2 * 6 * (6000 + 6000 + 1953 + 488) == 173_292
    hours = d["wall_time"]["panels"][0]["hours"]
    assert hours["1 worker"]["at_most"] == pytest.approx(1732.92 / 3600)
    assert hours["4 workers like this one"]["at_most"] == pytest.approx(1732.92 / 3600 / 4)
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "probe read from the cache" in text and "assumptions:" in text
    assert "(b) 1 worker" in text and "at_most 28.9 min" in text  # 1732.92 s
    assert "(b) 4 workers like this one" in text and "at_most 7.2 min" in text


def test_plan_estimate_without_probe_or_cache_says_so(tmp_path, capsys):
    from repro import __main__ as cli
    assert cli.main(["plan", str(FIG1), "--panel", "b", "--estimate", "--results", str(tmp_path),
                     "--no-probe"]) == 0
    assert "(b) no throughput measured" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- placement on several devices
def test_plan_shows_placement_on_several_logical_devices():
    env = dict(os.environ, REPRO_LOGICAL_CPUS="3", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-m", "repro", "plan", str(FIG1), "--grid", "full", "--panel", "a"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "placement on 3 device(s), at most 8192 examples per device:" in out.stdout
    assert ("(a) B [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]: 3 point(s) "
            "racing in parallel, one per device; B [16384]: each trial split over 2 devices, data parallel "
            "(8192 examples per device)") in out.stdout
    assert "each worker races whole study points" in out.stdout


def test_describe_placement_with_several_devices():
    from repro import plan as plan_mod
    rows = plan_mod.describe_placement(_plan("a", "full"), 4, 4096)["a"]
    assert rows[4096] == "4 point(s) racing in parallel, one per device"
    assert rows[8192] == "each trial split over 2 devices, data parallel (4096 examples per device)"
    assert rows[16384] == "each trial split over 4 devices, data parallel (4096 examples per device)"


# ---------------------------------------------------------------- `repro run`'s ETA from the start
def test_run_prior_prices_each_trial_and_counts_snip_passes(tmp_path):
    from repro import cost, plan as plan_mod
    plan = _plan("b")  # Figure 1(b) reduced: B 16, 64, 256, 1024; sparsities 0, 0.9; 6 trials

    def fake_prober(jobs):
        out = {throughput.entry_key(m, d, b): {"step_s": 0.001 * b, "steps_timed": 10}
               for m, d, bs in jobs for b in bs}
        out.update({throughput.entry_key(m, d): {"val_example_s": 1e-4, "n_val": 6000, "pass_s": 0.6}
                    for m, d, _ in jobs})
        return out

    rows = cost.estimate(plan)  # no stored results: the at-most budget
    points = plan_mod.study_points(plan)
    stored = {(*points[0].key, 0)}
    prior = throughput.run_prior(plan, rows, tmp_path, points, stored, workers=2, prober=fake_prober)
    assert prior["bound"] and "upper bound" in prior["text"]
    by_b = rows[0]["by_batch"]
    for p in points:
        d = by_b[p.batch_size]["at_most"]
        want = (d["steps"] * 0.001 * p.batch_size + d["examples_evaluated"] * 1e-4) / (2 * 6)
        assert prior["trial_s"][p.key] == pytest.approx(want)
    # a SNIP pass: 3 x the validation pass (0.6 s) x 54,000 / 6,000 training images
    assert prior["snip_s"] == {("mnist", "simple_cnn"): pytest.approx(16.2)}
    # 6 trial seeds, computed by each of min(2 workers, 4 sparse points)
    assert prior["snip_passes"] == 12
    (tmp_path / "cache" / "snip").mkdir(parents=True)
    (tmp_path / "cache" / "snip" / "mnist-simple_cnn-v1-seed3.npz").write_bytes(b"")
    again = throughput.run_prior(plan, rows, tmp_path, points, stored, workers=2, prober=fake_prober)
    assert again["snip_passes"] == 10  # seed 3's scores are on disk
    assert throughput.run_prior(plan, rows, tmp_path / "none", points, stored, 2, run_probe=False) is None
