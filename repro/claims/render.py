"""The verdicts as text: a fixed-width table for the terminal, strict JSON (``verify --json``,
``report/claims.json``) and JUnit XML for CI."""
import xml.etree.ElementTree as ET
from dataclasses import asdict

from .. import fmt
from .base import FAIL, INCONCLUSIVE, NOT_RUN, PASS, VERDICTS

_COLUMNS = ("figure", "panel", "claim", "status", "measured", "tolerance")


def format_table(results) -> str:
    """Fixed-width text table, one row per claim; any detail on an indented line below it."""
    rows = [[str(getattr(r, c)) for c in _COLUMNS] for r in results]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_COLUMNS)]
    line = lambda cells: "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line([c.upper() for c in _COLUMNS]), line(["-" * w for w in widths])]
    for r, row in zip(results, rows):
        out.append(line(row))
        if r.paper:
            out.append("    paper: " + r.paper)
        if r.detail:
            out.append("    " + r.detail)
    counts = {s: sum(r.status == s for r in results) for s in VERDICTS}
    out.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[INCONCLUSIVE]} inconclusive, "
               f"{counts[NOT_RUN]} not run")
    out.append("(intervals: 95 % percentile intervals over resampled evaluation steps, trials and seeds; "
               "see specs/README.md)")
    return "\n".join(out)


def to_json(results) -> str:
    """The results as a JSON list of objects (strict JSON: no NaN or Infinity, repro.fmt.to_json)."""
    return fmt.to_json([asdict(r) for r in results], indent=2)


def to_junit(results) -> bytes:
    """JUnit XML: one <testsuite> per figure, one <testcase> per (panel, claim).

    FAIL is a <failure>, INCONCLUSIVE and NOT-RUN a <skipped> with the reason (never a pass),
    each with the measured value, the tolerance and the detail, so a CI system shows every
    claim as its own test.
    """
    root = ET.Element("testsuites", name="repro verify")
    for fig in dict.fromkeys(r.figure for r in results):
        rs = [r for r in results if r.figure == fig]
        suite = ET.SubElement(root, "testsuite", name=fig, tests=str(len(rs)),
                              failures=str(sum(r.status == FAIL for r in rs)),
                              skipped=str(sum(r.status in (NOT_RUN, INCONCLUSIVE) for r in rs)), errors="0")
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=f"{fig}.panel_{r.panel}", name=r.claim)
            text = f"measured {r.measured}; tolerance {r.tolerance}" + (f"; {r.detail}" if r.detail else "")
            if r.status == FAIL:
                ET.SubElement(case, "failure", message=text).text = text
            elif r.status in (NOT_RUN, INCONCLUSIVE):
                ET.SubElement(case, "skipped", message=f"{r.status}: {text}")
            else:
                ET.SubElement(case, "system-out").text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
