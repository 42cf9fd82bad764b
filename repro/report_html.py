"""The report page, ``index.html``: a static page (no JavaScript, no network) laid out from a
:class:`repro.report_model.ReportPage`. Every text and number comes from the model; this
module adds the markup only (escaping, tables, banners, the commands in <code>)."""
from __future__ import annotations

import html
import re

from . import __version__, claims, fmt
from .report_model import MISSING, STALE

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 2px solid #ccc; padding-top: .6em; }
h3 { margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #f2f2f2; } td.num, th.num { text-align: right; white-space: nowrap; }
.verdict { font-weight: bold; white-space: nowrap; padding: 1px 5px; border-radius: 3px; }
.PASS { background: #d4f4d4; color: #145214; } .FAIL { background: #f9d0d0; color: #8a1111; }
.INCONCLUSIVE { background: #fff0c0; color: #6b5200; } .NOT-RUN { background: #e6e6e6; color: #444; }
.banner { padding: .6em 1em; border-radius: 4px; margin: .8em 0; }
.bad { background: #fbe3e3; border: 1px solid #d99; } .ok { background: #e6f5e6; border: 1px solid #9c9; }
.warn { background: #fff6db; border: 1px solid #e0c97a; }
.note { color: #555; font-size: .92em; } .sub { color: #666; font-size: .85em; display: block; }
code, pre { font: 12.5px/1.4 ui-monospace, monospace; background: #f6f6f6; }
pre { padding: .6em; overflow-x: auto; } td code { white-space: normal; word-break: break-word; }
img.figure { max-width: 100%; border: 1px solid #ddd; }
td.claimtext { max-width: 18em; } td.detail { max-width: 24em; font-size: .92em; }
td.notes { min-width: 22em; max-width: 30em; }
"""


def escape(text) -> str:
    return html.escape(str(text), quote=True)


def with_commands(text) -> str:
    """Escaped text with each `python -m repro ...` command (up to ; or a bracket) in <code>."""
    out, last = [], 0
    for match in re.finditer(r"python -m repro [^;()]*[^;()\s]", text or ""):
        out += [escape(text[last:match.start()]), f"<code>{escape(match.group())}</code>"]
        last = match.end()
    return "".join(out + [escape((text or "")[last:])])


def render_html(page) -> str:
    """The page, from the model `build_report` assembles."""
    lines = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Reproduction report: {escape(page.title)}</title>", f"<style>{CSS}</style></head><body>",
             f"<h1>Reproduction report</h1><p>{escape(page.title)}. Grid <b>{escape(page.grid)}</b>; built "
             f"{escape(page.built)} from stored results only (nothing was trained). "
             f"Verdicts as <code>python -m repro verify --json</code> gives them: "
             f"<a href=\"claims.json\">claims.json</a>. Markdown: <a href=\"report.md\">report.md</a>.</p>"]
    lines += _summary(page)
    for section in page.sections:
        lines += _section(section)
    lines += _provenance(page)
    lines.append(f"<p class=\"note\">Written by repro {escape(__version__)} (<code>python -m repro report</code>) "
                 f"in {page.seconds:.1f} s.</p></body></html>")
    return "\n".join(lines)


def _summary(page):
    """Banners (files not current; verdict counts) and the summary table."""
    counts = page.counts()
    lines = []
    if page.problems:
        lines.append('<div class="banner bad"><b>Some results files are not current</b> (exit status 2); '
                     "their claims are NOT-RUN until they are rebuilt:<ul>" +
                     "".join(f"<li><code>{escape(p)}</code></li>" for p in page.problems) + "</ul></div>")
    lines.append(f'<div class="banner {"bad" if counts[claims.FAIL] or page.problems else "ok"}">' +
                 ", ".join(f'<span class="verdict {v}">{counts[v]} {v}</span>' for v in claims.VERDICTS) +
                 f" over {page.claim_count} claims of {len(page.sections)} figures. "
                 "NOT-RUN never counts as a pass or a failure; INCONCLUSIVE means the interval does not "
                 "decide the claim.</div>")
    lines.append("<h2 id=\"summary\">Summary</h2><table><tr><th>figure</th><th>title</th><th>results</th>" +
                 "".join(f"<th>{v}</th>" for v in claims.VERDICTS) + "</tr>")
    for section in page.sections:
        spec, section_counts = section.spec, section.counts()
        lines.append(f'<tr class="summary" data-figure="{escape(spec.id)}">'
                     f'<td><a href="#{escape(spec.id)}">{escape(spec.id)}</a></td>'
                     f"<td>{escape(spec.title)}</td><td>{escape(section.state_text)}</td>" +
                     "".join(f'<td class="num">{section_counts[v] if section_counts[v] else ""}</td>'
                             for v in claims.VERDICTS) + "</tr>")
    lines.append('<tr><th colspan="3">all</th>' +
                 "".join(f'<th class="num">{counts[v]}</th>' for v in claims.VERDICTS) + "</tr></table>")
    return lines


def _section(section):
    """One figure: where its results are, the figure, its claims, K* tables and fits."""
    spec = section.spec
    lines = [f'<h2 id="{escape(spec.id)}">{escape(spec.id)}: {escape(spec.title)}</h2>']
    if section.state == STALE:
        lines.append(f'<div class="banner bad"><b>Results not current:</b> <code>{escape(section.stale_file)}</code> '
                     f"{escape(section.why)}.<br>To fix it: {with_commands(section.rebuild)}</div>")
    elif section.state == MISSING:
        lines.append(f'<div class="banner warn"><b>No results file</b> {escape(section.results_file)}. Run: '
                     f"<code>{escape(section.rebuild)}</code></div>")
    else:
        lines.append(f'<p class="note">Results: <a href="{escape(section.results_link)}">{escape(section.results_file)}</a> '
                     f"(spec <code>{escape(section.spec_file)}</code>, " + (
                         f"tolerances <code>{escape(section.golden_file)}</code>)</p>" if section.golden_file
                         else "no claims, no tolerances)</p>"))
    if section.partial:
        lines.append(f'<div class="banner warn">{with_commands(section.partial)}</div>')
    if section.image:
        lines.append(f'<p><img class="figure" src="{escape(section.image)}" alt="{escape(spec.id)}: '
                     f'{escape(spec.title)}"><br><span class="note">Figure: {escape(section.image_note)}</span></p>')
    else:
        lines.append(f'<p class="note">{escape(section.image_note)}</p>')
    lines.append("<h3>Claims</h3>")
    lines += [f'<p class="note unchecked">{escape(line)}</p>' for line in section.unchecked]
    lines += _claims_table(section.claim_rows)
    if section.results_note:
        lines.append(f'<p class="note">{escape(section.results_note)}</p>')
    for table in section.kstar:
        lines += _kstar(table)
    return lines + _fits(section.fits)


def _claims_table(rows):
    """One row per claim (none, and no table, for a spec that declares no claims)."""
    if not rows:
        return []
    lines = ["<table><tr><th>panel</th><th>claim</th><th>verdict</th><th>measured</th>"
             "<th>tolerance</th><th>the paper (where)</th><th>notes / how to run</th></tr>"]
    for row in rows:
        lines.append(
            f'<tr class="claim" id="{escape(row.anchor)}" data-figure="{escape(row.figure)}" '
            f'data-panel="{escape(row.panel)}" data-claim="{escape(row.claim)}" data-status="{escape(row.status)}">'
            f"<td>{escape(row.panel)}</td><td>{escape(row.claim)}</td>"
            f'<td><span class="verdict {escape(row.status)}">{escape(row.status)}</span></td>'
            f'<td class="claimtext"><span class="measured">{escape(row.measured)}</span>'
            + (f'<span class="sub statistic">{escape(row.statistic)}</span>' if row.statistic else "") + "</td>"
            f'<td class="claimtext tolerance">{escape(row.tolerance)}</td>'
            f'<td class="detail"><b class="paper">{escape(row.paper)}</b>'
            f'<span class="sub source">{escape(row.source)}</span></td>'
            f'<td class="detail notes">{with_commands(row.detail)}'
            + (f'<br>run: <code class="command">{escape(row.run_command)}</code>' if row.run_command else "")
            + "</td></tr>")
    lines.append("</table>")
    return lines


def _kstar(table):
    lines = [f'<h3>K* of panel ({escape(table.panel)}) {escape(table.title)}</h3>',
             f'<p class="note">Goal error {escape(table.goal)}; {table.trials} trials per point. Each cell: '
             "fewest steps to the goal, then the trial that reached it first and its metaparameters.</p>"]
    if table.note:
        lines.append(f'<p class="note">{with_commands(table.note)}</p>')
        return lines
    lines.append('<table class="kstar"><tr><th>sparsity \\ B</th>' +
                 "".join(f'<th class="num">{b}</th>' for b in table.batch_sizes) + "</tr>")
    for sparsity in table.sparsities:
        lines.append(f'<tr><th>{sparsity:g}</th>' + "".join(
            f'<td class="num">{escape(cell.text)}<span class="sub">{escape(cell.sub)}</span></td>'
            for cell in table.row(sparsity)) + "</tr>")
    lines.append("</table>")
    return lines


def _fits(table):
    """The Prop. 4.1 fits with their intervals, and the rows too short to fit."""
    fitted = table.fitted
    lines = ["<h3>Prop. 4.1 fits: K* = c1/B + c2</h3>"] if table.rows else []
    if fitted:
        lines.append("<table><tr><th>panel</th><th>sparsity</th>"
                     "<th>c1</th><th>95% interval</th><th>c2</th><th>95% interval</th>"
                     "<th>B_crit = c1/c2</th><th>95% interval</th><th>points</th><th>rms log residual</th></tr>")
        for row in fitted:
            numbers = (fmt.number(row.c1), fmt.interval(row.ci["c1"]), fmt.number(row.c2),
                       fmt.interval(row.ci["c2"]), fmt.number(row.b_crit), fmt.interval(row.ci["b_crit"]),
                       row.n_points, fmt.number(row.rms_log_residual))
            lines.append(f'<tr class="fit"><td>{escape(row.panel)}</td><td class="num">{row.sparsity:g}</td>'
                         + "".join(f'<td class="num">{text}</td>' for text in numbers) + "</tr>")
        lines.append(f'</table><p class="note">Least squares on log K* (repro.analysis.fit_prop41); '
                     f"intervals: {fitted[0].n_boot} bootstrap replicates resampling each point's trials "
                     "(K* is a minimum over trials, so c1's interval sits at or above the fit).</p>")
    if table.unfitted_text:
        lines.append(f'<p class="note">{escape(table.unfitted_text)}</p>')
    return lines


def _provenance(page):
    """How the page was built, the results files missing or not current, and each figure's file."""
    lines = ['<h2 id="provenance">Provenance</h2>', "<table>"]
    code, machine = page.code, page.machine
    rows = [("repro commit", f"{code['commit']} (uncommitted changes: {code['dirty']})"),
            ("repro version", __version__),
            ("command", page.command),
            ("machine", f"{machine['cores']} cores ({machine['cpu']}), "
                        f"{machine['memory']} memory; devices: {machine['devices']}"),
            ("platform", f"{machine['platform']}, Python {machine['python']}"),
            ("packages", ", ".join(f"{name} {version}" for name, version in page.packages.items()))]
    lines += [f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in rows]
    lines.append("</table>")
    if page.problems or any(s.state == MISSING for s in page.sections):
        lines.append("<h3>Results files missing or not current</h3><ul>")
        for s in page.sections:
            if s.state == STALE:
                lines.append(f"<li><code>{escape(s.results_file)}</code>: not current ({escape(s.problem)}). "
                             f"Rebuild: <code>{escape(s.rebuild)}</code></li>")
            elif s.state == MISSING:
                lines.append(f"<li><code>{escape(s.results_file)}</code>: missing. "
                             f"Run: <code>{escape(s.rebuild)}</code></li>")
        lines.append("</ul>")
    lines.append("<h3>Per figure</h3><table><tr><th>figure</th><th>spec sha256</th><th>results file</th>"
                 "<th>results sha256</th><th>trials stored</th><th>trained / reused by the last run</th>"
                 "<th>run wall time</th><th>trial time (sum)</th><th>written</th><th>at commit</th></tr>")
    lines += [_provenance_row(s) for s in page.sections]
    lines.append("</table><p class=\"note\">Checksums are sha256 (first 12 hex digits shown; full values in "
                 "report.md). Trial time sums each trial's wall time over all workers; trained / reused "
                 "and run wall time are recorded by <code>python -m repro run</code> (a file rebuilt by "
                 "<code>collect</code> has none).</p>")
    lines.append("<h3>Open it yourself</h3><p>The results are plain netCDF (layout: "
                 "<code>docs/results-format.md</code>); no repro code is needed:</p><pre>" +
                 escape(page.snippet) + "</pre>")
    return lines


def _provenance_row(section):
    """One figure's row of the per-figure provenance table."""
    spec, p = section.spec, section.provenance
    results = f'<a href="{escape(section.results_link)}">{escape(section.results_file)}</a>' \
        if section.state != MISSING else f"{escape(section.results_file)} (missing)"
    if not p:
        return (f"<tr><td>{escape(spec.id)}</td><td><code>{escape(spec.sha256[:12])}</code></td><td>{results}</td>"
                '<td colspan="7" class="note">' +
                escape("no readable results" if section.state != MISSING else "not run") + "</td></tr>")
    spec_note = "" if p.results_spec_sha256 == spec.sha256 else \
        f" (file built from {str(p.results_spec_sha256)[:12]})"
    return (f"<tr><td>{escape(spec.id)}</td><td><code>{escape(spec.sha256[:12])}</code>{escape(spec_note)}</td>"
            f"<td>{results}</td><td><code>{escape(p.results_sha256[:12])}</code></td>"
            f'<td class="num">{p.stored} of {p.total} {p.unit}</td>'
            f"<td>{escape(p.trained_text)}</td><td>{escape(p.run_wall)}</td>"
            f"<td>{escape(p.trial_time)}</td><td>{escape(p.created)}</td>"
            f"<td><code>{escape(str(p.git_commit)[:12])}</code></td></tr>")

