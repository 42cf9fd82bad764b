"""`python -m repro bench`: a naive Keras harness and repro on the same study, side by side.

Sides (`--sides`, default all four):
  naive1  what a Keras user writes -- keras-tuner (the same Sobol trials) whose trials call
          `model.fit` over the same batches, a callback that classifies the whole validation
          split every evaluation step and stops at the goal, SNIP computed per trial, no
          capping, no early exit, one trial at a time. It keeps the paper's TF1 update rule (a
          small Keras optimizer) and runs on one thread with TensorFlow's deterministic
          kernels, as each of repro's trials does (either setting changes the last bits, see
          engine.TRIAL_THREADS), so that it trains bit for bit the networks repro trains.
  naive   the same harness as a user runs it: TensorFlow's default thread pools over the whole
          machine and its default (non-deterministic) kernels. Its K* and best trial may
          differ from repro's; the bench reports per point whether they match.
  repro   `run_plan` with its defaults into a fresh results folder.
  floor   the bare compiled training loop over exactly the steps repro trained, split over the
          same number of processes (it needs the repro side).
Each side runs in its own process tree; peak memory is the largest sum of resident memory over
that tree, sampled every 0.2 s. Per study point the bench compares K* and the best trial (the
lowest Sobol trial index among those reaching K*); the single-thread naive side must agree
with repro at every point, or `bench` reports it and exits 1. The speed and memory targets are printed
with the measured value and whether each is met; none is asserted.

The benchmark stands apart from the library: nothing in repro imports it but the command
line. Its modules: `driver` (the sides as process trees, then the report), `sides` (the study,
repro's side and the floor, each run by `python -m repro.bench _side ...`), `naive` (the naive
harness) and `compare` (K* per point, racing's bound, the targets and the lines printed).
"""
from .compare import TARGETS
from .driver import SIDES, bench, check_json_path, parse_sides

__all__ = ["SIDES", "TARGETS", "bench", "check_json_path", "parse_sides"]
