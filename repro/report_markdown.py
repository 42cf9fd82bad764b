"""The report as Markdown, ``report.md``: the same :class:`repro.report_model.ReportPage` as
the HTML page, laid out as headings, lists and pipe tables (full checksums included)."""
from __future__ import annotations

from . import __version__, claims, fmt
from .report_model import MISSING, STALE


def cell(text) -> str:
    """Text for a pipe-table cell: no unescaped '|', no line break."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(page) -> str:
    """report.md, from the model `build_report` assembles."""
    lines = ["# Reproduction report", "",
             f"{page.title}. Grid **{page.grid}**; built {page.built} from stored results only (nothing "
             "was trained). Verdicts as `python -m repro verify --json` gives them: `claims.json`.", ""]
    if page.problems:
        lines += ["**Some results files are not current** (exit status 2); their claims are NOT-RUN "
                  "until they are rebuilt:", ""] + [f"- `{p}`" for p in page.problems] + [""]
    lines += _summary(page)
    for section in page.sections:
        lines += _section(section)
    lines += _provenance(page)
    lines += ["", "### Open it yourself", "", "```python", page.snippet, "```", "",
              f"Written in {page.seconds:.1f} s by `python -m repro report`.", ""]
    return "\n".join(lines)


def _summary(page):
    counts = page.counts()
    lines = [", ".join(f"**{counts[v]} {v}**" for v in claims.VERDICTS) +
             f" over {page.claim_count} claims of {len(page.sections)} figures.", "", "## Summary", "",
             "| figure | title | results | " + " | ".join(claims.VERDICTS) + " |",
             "|---|---|---|" + "---|" * len(claims.VERDICTS)]
    for section in page.sections:
        spec, section_counts = section.spec, section.counts()
        lines.append(f"| [{spec.id}](#{spec.id}) | {cell(spec.title)} | {section.state_text} | " +
                     " | ".join(str(section_counts[v]) for v in claims.VERDICTS) + " |")
    lines.append("| **all** | | | " + " | ".join(f"**{counts[v]}**" for v in claims.VERDICTS) + " |")
    return lines


def _section(section):
    """One figure: where its results are, the figure, its claims, K* tables and fits."""
    spec = section.spec
    lines = ["", f"## {spec.id}", "", f"{spec.title}", ""]
    if section.state == STALE:
        lines += [f"**Results not current:** {section.problem}. Rebuild: `{section.rebuild}`", ""]
    elif section.state == MISSING:
        lines += [f"**No results file** `{section.results_file}`. Run: `{section.rebuild}`", ""]
    else:
        lines += [f"Results: [{section.results_file}]({section.results_link}); spec `{section.spec_file}`; "
                  + (f"tolerances `{section.golden_file}`." if section.golden_file
                     else "no claims, no tolerances."), ""]
    if section.partial:
        lines += [f"**{section.partial}**", ""]
    lines += ([f"![{spec.id}]({section.image})", "", f"Figure: {section.image_note}", ""] if section.image
              else [section.image_note, ""])
    lines += [line for text in section.unchecked for line in (cell(text), "")]
    lines += _claims_table(section.claim_rows)
    for table in section.kstar:
        lines += _kstar(table)
    return lines + _fits(section.fits)


def _claims_table(rows):
    """One row per claim (none, and no table, for a spec that declares no claims)."""
    if not rows:
        return []
    lines = ["| panel | claim | verdict | measured | tolerance | paper | source | notes / how to run |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.panel} | {row.claim} | **{row.status}** | {cell(row.measured)}"
                     + (f" ({cell(row.statistic)})" if row.statistic else "") + f" | {cell(row.tolerance)} | "
                     f"{cell(row.paper)} | {cell(row.source)} | {cell(row.detail)}"
                     + (f" run: `{cell(row.run_command)}`" if row.run_command else "") + " |")
    return lines


def _kstar(table):
    lines = ["", f"### K* of panel ({table.panel}) {table.title}", "",
             f"Goal error {table.goal}; {table.trials} trials per point.", ""]
    if table.note:
        return lines + [table.note]
    lines += ["| sparsity \\ B | " + " | ".join(map(str, table.batch_sizes)) + " |",
              "|---|" + "---|" * len(table.batch_sizes)]
    for sparsity in table.sparsities:
        lines.append(f"| {sparsity:g} | " + " | ".join(
            f"{c.text} ({cell(c.sub)})" for c in table.row(sparsity)) + " |")
    return lines


def _fits(table):
    fitted = table.fitted
    lines = ["", "### Prop. 4.1 fits: K* = c1/B + c2", ""] if table.rows else []
    if fitted:
        lines += ["| panel | sparsity | c1 | 95% interval | c2 | 95% interval | B_crit | 95% interval | points |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in fitted:
            lines.append(f"| {row.panel} | {row.sparsity:g} | {fmt.number(row.c1)} | {fmt.interval(row.ci['c1'])} | "
                         f"{fmt.number(row.c2)} | {fmt.interval(row.ci['c2'])} | {fmt.number(row.b_crit)} | "
                         f"{fmt.interval(row.ci['b_crit'])} | {row.n_points} |")
        lines += ["", f"Intervals: {fitted[0].n_boot} bootstrap replicates over each point's trials."]
    if table.unfitted_text:
        lines += ["", table.unfitted_text]
    return lines


def _provenance(page):
    code, machine = page.code, page.machine
    lines = ["", "## Provenance", "",
             f"- repro commit: {code['commit']} (uncommitted changes: {code['dirty']}); version {__version__}",
             f"- command: `{page.command}`",
             f"- machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} memory; "
             f"devices: {machine['devices']}",
             f"- platform: {machine['platform']}, Python {machine['python']}",
             "- packages: " + ", ".join(f"{name} {version}" for name, version in page.packages.items()), ""]
    for s in page.sections:
        if s.state == STALE:
            lines.append(f"- `{s.results_file}`: not current ({s.problem}). Rebuild: `{s.rebuild}`")
        elif s.state == MISSING:
            lines.append(f"- `{s.results_file}`: missing. Run: `{s.rebuild}`")
    lines += ["", "| figure | spec sha256 | results sha256 | trials stored | trained / reused | run wall time "
              "| trial time | written | at commit |", "|---|---|---|---|---|---|---|---|---|"]
    for s in page.sections:
        p = s.provenance
        if not p:
            lines.append(f"| {s.spec.id} | {s.spec.sha256} | {'missing' if s.state == MISSING else 'unreadable'} "
                         "| | | | | | |")
            continue
        lines.append(f"| {s.spec.id} | {s.spec.sha256} | {p.results_sha256} | {p.stored} of {p.total} "
                     f"{p.unit} | {p.trained_text} | {p.run_wall} | {p.trial_time} | "
                     f"{p.created} | {p.git_commit} |")
    return lines
