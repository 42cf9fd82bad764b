"""Named claim checks on a results dataset or a K* table, with tolerances from a golden file.

Every claim is a statistic of the data (a slope, a ratio, a fitted constant) with a 95 %
interval over resampled evaluation steps, trials and replicate seeds (``repro.evidence``), and
gives one of four verdicts, PASS, FAIL, INCONCLUSIVE or NOT-RUN (see ``base``).

The package, by what each module holds:

- ``base``: the verdicts, ``Verdict`` and ``ClaimResult``, ``decide`` and ``worst``, and the
  ``Claim`` interface (name, the data it reads, its tolerance keys, its check);
- ``context``: ``PanelContext``, one panel's data and resampled replicates, and the statistics
  the checks share;
- ``kstar``, ``sparsity``, ``metaparams``, ``smoothness``: the checks, grouped by what they read;
- ``registry``: every claim by name (the names of ``repro.spec.CLAIMS``);
- ``golden``: golden files, validated against the claims' tolerance keys;
- ``verify_data``: running the claims on a dataset or a K* table; how each kind of results
  file is read (``SEARCH_RESULTS``, ``SMOOTHNESS_RESULTS``: repro.study says which a spec has);
- ``table``: reading a K* table; ``render``: the verdicts as text, JSON and JUnit XML.

This module re-exports the names the rest of repro and the tests use.
"""
from .base import (FAIL, INCONCLUSIVE, NOT_RUN, PASS, VERDICTS, Claim, ClaimResult, NotRun, Reads,
                   Verdict, decide, worst)
from .context import PanelContext
from .golden import load_golden, tolerance_for
from .registry import GOLDEN_SCHEMA, REGISTRY, SMOOTHNESS_CLAIMS, TABLE_CLAIMS
from .render import format_table, to_json, to_junit
from .table import TABLE_COLUMNS, read_table
from .verify_data import (SEARCH_RESULTS, SMOOTHNESS_RESULTS, check_evidence, check_one,
                          check_panel, exit_code, not_run, run_hint, verify_dataset, verify_table)

CLAIMS = REGISTRY  # claim name -> Claim (its check is CLAIMS[name].check)

__all__ = [
    "PASS", "FAIL", "INCONCLUSIVE", "NOT_RUN", "VERDICTS", "Claim", "ClaimResult", "NotRun", "Reads",
    "Verdict", "decide", "worst", "PanelContext", "load_golden", "tolerance_for", "GOLDEN_SCHEMA",
    "REGISTRY", "CLAIMS", "SMOOTHNESS_CLAIMS", "TABLE_CLAIMS", "format_table", "to_json", "to_junit",
    "TABLE_COLUMNS", "read_table", "check_one", "check_panel", "exit_code", "not_run", "run_hint",
    "verify_dataset", "verify_table", "check_evidence", "SEARCH_RESULTS", "SMOOTHNESS_RESULTS",
]
