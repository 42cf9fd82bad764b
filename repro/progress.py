"""What a run reports as it goes, and the progress lines it prints.

A point's race (repro.run.run_point) reports a `TrialEvent` as each trial gets its record
(trained, or re-read from the store), a `RaceRound` after each evaluation round, and a `Stage`
for work outside the trials' steps (loading the data, a SNIP score pass, a race starting).
`Progress` counts those events over a whole plan and prints one line each, headed by the
trials done, the time elapsed and an ETA.
"""
import collections
import dataclasses
import math
import time

from . import store as store_mod
from .plan import REPLICATE_SEED_STRIDE


@dataclasses.dataclass(frozen=True)
class TrialEvent:
    """One trial of a point has its record: trained now, or re-read (`reused`)."""

    point: object             # plan.StudyPoint
    trial: int                # Sobol index
    record: store_mod.TrialRecord  # as the point's search reads it (its goal and cap)
    reused: bool              # read from the store, not trained by this run
    best: int | None = None   # the point's K* once known (None: not yet, or none)


@dataclasses.dataclass(frozen=True)
class RaceRound:
    """A point's race finished an evaluation round (for progress lines between trial events)."""

    point: object             # plan.StudyPoint
    step: int                 # the evaluation step every live trial has now reached
    live: int                 # trials still racing
    best: int | None          # K* so far (None: no trial has met the goal yet)


@dataclasses.dataclass(frozen=True)
class Stage:
    """Work of a point outside its trials' steps, for progress lines from the first second:
    loading the data (and building the engine), a SNIP score pass, a race starting."""

    point: object             # plan.StudyPoint
    kind: str                 # "data" | "snip" | "race"
    state: str                # "start" | "progress" | "done"
    text: str                 # what, in words ("loading cifar10", "SNIP scores of seed 3", ...)
    done: int = 0             # "progress": examples done, of
    total: int = 0            # ... this many
    seconds: float = 0.0      # "progress" and "done": seconds since it started


def stage_line(e):
    """One progress line's text for a Stage (without the [done/total | elapsed | ETA] head)."""
    seed, pid, s, b = e.point.key
    where = f"({pid}) B={b} s={s:g}"
    if e.state == "start":
        return f"{where}: {e.text}"
    if e.state == "progress":
        return (f"{where}: {e.text}: {e.done:,} of {e.total:,} images "
                f"({e.done / max(e.total, 1):.0%}), {hms(e.seconds)}")
    return f"{where}: {e.text} done in {hms(e.seconds)}"


@dataclasses.dataclass
class Progress:
    """Counts trials over the whole plan and prints one line per trial with an ETA, and a line
    as each data load, SNIP pass and race starts (a SNIP pass also every `every_stage` seconds).

    The ETA holds from the start when `prior` is given (repro.throughput.run_prior: the
    throughput probe's step times over repro.cost's steps per trial, an upper bound when there
    are no stored results to predict K* from): a point whose trials have not been timed here
    takes its prior, scaled by how the trials timed so far compare with theirs."""

    points: list  # the plan's StudyPoints: their trials are what there is to do
    workers: int = 1
    log: object = print
    trained: int = 0
    trained_time: float = 0.0
    steps_trained: int = 0
    examples_trained: int = 0
    examples_evaluated: int = 0
    steps_by_batch: dict = dataclasses.field(default_factory=dict)  # {B: steps trained here}
    start: float = dataclasses.field(default_factory=time.perf_counter)
    finished: set = dataclasses.field(default_factory=set)  # (seed, panel, s, B, trial) done or stored
    base_seed: int = 0  # the figure's seed: a trial of another replicate's search says which
    seconds: dict = dataclasses.field(default_factory=dict)  # {(panel, s, B): [seconds, trials]} trained here
    prior: dict | None = None  # repro.throughput.run_prior: {"trial_s": {point key: s}, "bound",
                               # "snip_s": {(dataset, model): s}, "snip_passes": n}; None: none
    prior_spent: float = 0.0   # the prior's seconds of the trials trained so far
    snip_done: int = 0         # SNIP passes finished in this run
    snip_measured: dict = dataclasses.field(default_factory=dict)  # {(dataset, model): seconds}

    every: float = 30.0  # seconds between race-progress lines of one point
    every_stage: float = 10.0  # seconds between progress lines of one SNIP pass
    last_round: dict = dataclasses.field(default_factory=dict)  # point key -> time of its last line

    @property
    def total(self):
        return sum(p.trials for p in self.points)

    @property
    def done(self):
        return len(self.finished)

    def head(self, now=None):
        """'[done/total trials | elapsed | ETA ...]', the start of every progress line."""
        now = time.perf_counter() if now is None else now
        return f"[{self.done}/{self.total} trials | {hms(now - self.start)} | ETA {self.eta()}]"

    def __call__(self, e):
        if isinstance(e, RaceRound):
            return self.race_round(e)
        if isinstance(e, Stage):
            return self.stage(e)
        key = (*e.point.key, e.trial)
        if e.reused and key in self.finished:
            return  # already counted (stored before this run, or reported once already)
        self.finished.add(key)
        rec = e.record
        if not e.reused:
            self.trained += 1
            self.trained_time += rec.wall_time
            self.prior_spent += self._prior_trial(e.point) or 0.0
            self.steps_trained += rec.steps
            self.examples_trained += rec.examples_trained
            self.examples_evaluated += max(rec.examples_evaluated, 0)
            b = e.point.batch_size
            self.steps_by_batch[b] = self.steps_by_batch.get(b, 0) + rec.steps
            spent = self.seconds.setdefault(e.point.key[1:], [0.0, 0])
            spent[0], spent[1] = spent[0] + rec.wall_time, spent[1] + 1
        hp = " ".join(f"{n}={v:.3g}" for n, v in rec.values.items())
        result = f"K={rec.k}" if rec.k is not None else f"{rec.steps} steps"
        seed, pid, s, b = e.point.key
        r = (seed - self.base_seed) // REPLICATE_SEED_STRIDE
        replicate = f"replicate {r} " if r else ""
        best = "" if e.best is None else f" | K* {e.best}"
        self.log(f"{self.head()} {replicate}({pid}) B={b} s={s:g} trial {e.trial}: "
                 f"{rec.status} {result} ({hp}) {rec.wall_time:.1f}s"
                 f"{' stored' if e.reused else ''}{best}")

    def stage(self, e):
        """A line as a data load, SNIP pass or race starts and as a load or pass ends; a SNIP
        pass's progress every `every_stage` seconds."""
        now = time.perf_counter()
        key = ("stage", e.point.key, e.kind)
        if e.state == "progress":
            if e.done >= e.total or now - self.last_round.setdefault(key, now) < self.every_stage:
                return  # the last chunk: its "done" line follows at once
        self.last_round[key] = now
        if e.kind == "snip" and e.state == "done":
            self.snip_done += 1
            self.snip_measured[(e.point.panel.dataset, e.point.panel.model)] = e.seconds
        seed, *_ = e.point.key
        r = (seed - self.base_seed) // REPLICATE_SEED_STRIDE
        self.log(f"{self.head(now)} {f'replicate {r} ' if r else ''}{stage_line(e)}")

    def race_round(self, e):
        """A line every `every` seconds per racing point: where its race is, and the ETA."""
        now = time.perf_counter()
        if now - self.last_round.setdefault(e.point.key, now) < self.every:
            return
        self.last_round[e.point.key] = now
        seed, pid, s, b = e.point.key
        r = (seed - self.base_seed) // REPLICATE_SEED_STRIDE
        self.log(f"{self.head(now)} "
                 f"{f'replicate {r} ' if r else ''}({pid}) B={b} s={s:g} racing: {e.live} trials "
                 f"at step {e.step:,} of {e.point.max_steps:,}"
                 + ("" if e.best is None else f", K* {e.best}"))

    def _prior_trial(self, point):
        return (self.prior or {}).get("trial_s", {}).get(point.key)

    def trial_seconds(self, point):
        """Expected seconds of one of `point`'s trials: the mean of those trained here at the
        same panel, sparsity and B; else from the nearest B trained at that panel and
        sparsity (K*(B) x B does not fall as B grows, and K* does not grow with B, so a trial
        at B' costs at most that at B >= B', and at most B'/B times it for B' > B); else the
        prior's (scaled by the trials trained so far: their seconds over their prior's); else
        the mean over every trial trained so far (None: nothing to go by yet)."""
        _, pid, s, b = point.key
        same = {key[2]: sec / n for key, (sec, n) in self.seconds.items() if key[:2] == (pid, s)}
        if same:
            near = min(same, key=lambda x: (abs(math.log(x / b)), -x))
            return same[near] * (b / near if b > near else 1.0)
        prior = self._prior_trial(point)
        if prior is not None:
            return prior * (self.trained_time / self.prior_spent if self.prior_spent > 0 else 1.0)
        return self.trained_time / self.trained if self.trained else None

    def snip_seconds_left(self):
        """SNIP passes still to come (the prior's count less those done) at their measured (else
        predicted) seconds, over the workers."""
        if not self.prior or not self.prior.get("snip_passes"):
            return 0.0
        left = max(0, self.prior["snip_passes"] - self.snip_done)
        each = {**self.prior.get("snip_s", {}), **self.snip_measured}
        return left * (max(each.values()) if each else 0.0) / self.workers

    def eta(self):
        """Time left: every trial not done yet at its point's `trial_seconds`, plus the SNIP
        passes to come, over the workers. '<=' while it is the prior's upper bound alone."""
        left, done = 0.0, collections.Counter(key[:4] for key in self.finished)
        for p in self.points:
            todo = p.trials - done[p.key]
            if todo:
                each = self.trial_seconds(p)
                if each is None:
                    return "?"
                left += todo * each
        bound = bool(self.prior and self.prior.get("bound")) and not self.trained
        return ("<=" if bound else "") + hms(left / self.workers + self.snip_seconds_left())


def hms(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
