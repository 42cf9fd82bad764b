"""The vocabulary every claim check shares: the four verdicts, what a check returns
(:class:`Verdict`), what a run of the checks reports (:class:`ClaimResult`), how an interval
becomes a verdict (:func:`decide`, :func:`worst`), and the one interface a check implements,
:class:`Claim`.

A verdict is one of:

- PASS: the interval lies where the claim holds;
- FAIL: the interval lies where it does not (the data contradict it beyond their uncertainty);
- INCONCLUSIVE: the interval straddles the threshold, or the grid does not reach the regime the
  claim is about (decided from the fitted B_crit); ``detail`` says what would decide it;
- NOT-RUN: no data; ``detail`` says what to run.
"""
import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import control

PASS, FAIL, INCONCLUSIVE, NOT_RUN = "PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NOT_RUN)

NUMBER = (int, float)  # a tolerance value that may be an integer or a float (never a boolean)


@dataclass
class ClaimResult:
    """The outcome of one claim on one panel."""

    figure: str
    panel: str
    claim: str
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE" | "NOT-RUN"
    measured: str  # human readable measured value(s), with their interval
    tolerance: str  # human readable tolerance
    detail: str = ""  # NOT-RUN: why, and the command that fixes it; INCONCLUSIVE: what would decide it
    values: dict = field(default_factory=dict)  # machine-readable numbers for --json
    paper: str = ""  # the paper's own number for this claim, where it gives one
    source: str = ""  # where the tolerance and the paper's number come from (golden `source`)


@dataclass
class Verdict:
    """What a check returns: the verdict and its text (the runner adds figure, panel, claim)."""

    status: str
    measured: str
    tolerance: str
    detail: str = ""
    values: dict = field(default_factory=dict)
    paper: str = ""


class NotRun(Exception):
    """Raised inside a claim check when there are no data for it at all; the message says
    which data are missing (the runner appends the command that produces them)."""


def decide(interval, band, above=False, log=False):
    """PASS when the interval lies inside the band where the claim holds, FAIL when it lies
    wholly outside it, INCONCLUSIVE when it straddles an edge. `above`: the claim is "more than
    band[0]", so an interval starting exactly at band[0] (a ratio of exactly 1, say) is not a PASS.
    `log`: a ratio's interval, taken on the log scale (its p-value is read there too).
    Every decision is recorded with its p-value (repro.claims.control) for the figure's error
    control: a FAIL stands only if it survives Holm's correction over the figure."""
    status = verdict_of(interval, band, above)
    control.record(status, control.p_value(interval, band, above, log=log) if status == FAIL else 1.0)
    return status


def verdict_of(interval, band, above=False):
    """`decide`'s verdict, without recording it (for text about a decision already made)."""
    lo, hi = interval
    a, b = band
    if (a < lo if above else a <= lo) and hi <= b:
        return PASS
    if hi < a or lo > b or (above and hi <= a):
        return FAIL
    return INCONCLUSIVE


def worst(statuses):
    """Combine verdicts of parts that must all hold: any FAIL, else any INCONCLUSIVE, else PASS."""
    for s in (FAIL, INCONCLUSIVE):
        if s in statuses:
            return s
    return PASS


class Reads(enum.Enum):
    """The data a claim needs. The first three come from a search (a results dataset of K* per
    batch size and sparsity); smoothness runs are a different kind of results file."""

    KSTAR = "K*(B) of a search"  # K* per (B, s): a K* table alone can decide it
    TRIALS = "per-trial metaparameters of a search"  # every trial's learning rate and outcome
    REFERENCE_PANEL = "K*(B) of this panel and of a reference panel"  # two panels of one search
    SMOOTHNESS = "smoothness runs"  # per-step L, loss, noise scale of fixed-metaparameter runs

    @property
    def results_kind(self) -> str:
        """The kind of results file the claim reads, as the NOT-RUN text names it."""
        return Reads.SMOOTHNESS.value if self is Reads.SMOOTHNESS else Reads.KSTAR.value


# key -> (accepted type or types, required): a claim's tolerance keys in the golden file
ToleranceSchema = Mapping[str, tuple]


@dataclass(frozen=True)
class Claim:
    """One named claim of the paper: the data it reads, the tolerance keys its golden table
    takes, and the check that turns one panel's data into a :class:`Verdict`.

    ``check(ctx, tol)`` gets the panel's :class:`~repro.claims.context.PanelContext` and the
    claim's golden table (per-panel overrides applied); it raises :class:`NotRun` when the
    data it needs are absent. Every golden table also takes ``source`` and ``why``.
    """

    name: str
    reads: Reads
    tolerance_schema: ToleranceSchema
    check: Callable[[Any, dict], Verdict]  # (PanelContext, golden table) -> Verdict

    @property
    def table_ok(self) -> bool:
        """Whether ``verify --table`` can check it: a K* table alone decides it (no per-trial
        metaparameters, no smoothness runs, no second panel)."""
        return self.reads is Reads.KSTAR

    @property
    def smoothness(self) -> bool:
        """Whether it reads smoothness runs rather than a search."""
        return self.reads is Reads.SMOOTHNESS
