"""One self-contained HTML page per execution: inline CSS and SVG only, so it opens offline,
from a mail attachment or an S3 console download, and prints."""

from __future__ import annotations

from html import escape

from pipeline.definition.svg import STATE_COLOURS, svg as dag_svg
from pipeline.report import charts
from pipeline.report.facts import SIGNAL_STATS, Facts, error_kinds
from pipeline.report.sources import Execution
from steps import contract as c

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#111827;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
.meta{color:#4b5563} table{border-collapse:collapse;font-size:13px} td,th{padding:3px 8px;text-align:left;
border-bottom:1px solid #f0f1f3;vertical-align:top} th{background:#f9fafb} td.n{text-align:right}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border:1px solid #374151}
.flag{color:#b91c1c;font-weight:600} .muted{color:#6b7280} code{font-size:12px}
"""


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _legend(states: set[str]) -> str:
    return '<p class="legend">' + "".join(
        f'<span><i style="background:{STATE_COLOURS[s]}"></i>{s}</span>' for s in STATE_COLOURS if s in states) + "</p>"


def section_dag(execution: Execution) -> str:
    states = {s.name: s.state for s in execution.steps}
    return ("<h2>Steps</h2>" + _legend(set(states.values())) + dag_svg(execution.definition, states)
            + _table(["step", "state", "why"], [[escape(s.name), escape(s.state), escape(s.reason or "")]
                                                 for s in execution.steps]))


def section_timeline(execution: Execution) -> str:
    return "<h2>Timeline</h2>" + charts.timeline(execution.steps, execution.started)


def section_shards(facts: Facts) -> str:
    if not facts.shards:
        return "<h2>Shards</h2><p class=muted>No Featurize report (the step did not run or its output is gone).</p>"
    shards = sorted(facts.shards, key=lambda r: r[c.REPORT_SHARD])
    records = charts.stacked_bars([(r[c.REPORT_SHARD], [(r[c.REPORT_RECORDS_OK], charts.BLUE, "ok"),
                                                        (r[c.REPORT_RECORDS_FAILED], charts.ORANGE, "failed")])
                                   for r in shards], "", "records per shard")
    speed = charts.stacked_bars([(r[c.REPORT_SHARD], [(r.get(c.REPORT_RECORDS_PER_S) or 0, charts.TEAL, "records/s")])
                                 for r in shards], " rec/s", "throughput per shard")
    rows = [[escape(r[c.REPORT_SHARD]), f"{r[c.REPORT_RECORDS_TOTAL]:,}", f"{r[c.REPORT_RECORDS_FAILED]:,}",
             f"{r[c.REPORT_BYTES_READ] / 1e6:,.2f}", f"{r[c.REPORT_SECONDS]:.2f}", f"{r.get(c.REPORT_MB_PER_S) or 0:.2f}",
             f"{r.get(c.REPORT_RECORDS_PER_S) or 0:.1f}", str(r.get(c.REPORT_JOBS)),
             f"{100 * (r.get(c.REPORT_BALANCE) or 0):.0f} %",
             " ".join(f"{w[c.WORKER_BUSY_S]:.2f}" for w in r.get(c.REPORT_WORKERS, []))] for r in shards]
    table = _table(["shard", "records", "failed", "MB read", "s", "MB/s", "records/s", "workers", "balance",
                    "busy s per worker"], rows, set(range(1, 9)))
    return ("<h2>Shards</h2><p>Records (ok, failed) per shard</p>" + records + "<p>Throughput</p>" + speed + table
            + "<p class=muted>Balance: the mean worker's busy time over the busiest worker's (100 % = even).</p>")


def section_errors(facts: Facts) -> str:
    kinds = error_kinds(facts.errors)
    if not kinds:
        return "<h2>Errors</h2><p>No error rows.</p>"
    bars = charts.stacked_bars([(k["kind"], [(k["count"], charts.RED, "rows")]) for k in kinds], "", "error rows by kind")
    rows = []
    for k in kinds:
        examples = "<br>".join(
            escape(f"{e.get('shard', '')} {e.get('record', '')} {e.get('file', '') or ''}: {e.get('message', '')}")
            for e in k["examples"])
        rows.append([escape(k["kind"]), str(k["count"]), examples])
    return "<h2>Errors</h2>" + bars + _table(["kind", "rows", "examples"], rows, {1})


def section_signals(facts: Facts) -> str:
    summary = facts.summary
    if summary.empty:
        return "<h2>Signals</h2><p class=muted>No feature rows.</p>"
    flagged = {(o["signal"], o["stat"]): set() for o in facts.outliers}
    for o in facts.outliers:
        flagged[(o["signal"], o["stat"])].add(o["shard"])
    rows = []
    for signal, group in summary.groupby("signal_normalised"):
        cells = [escape(str(signal)), str(len(group))]
        for stat in SIGNAL_STATS:
            by_shard = {str(s): g[stat].to_numpy(dtype=float) for s, g in group.groupby("shard")}
            cells.append(charts.box_plot(by_shard, flagged.get((signal, stat), set()), f"{signal} {stat}"))
        rows.append(cells)
    outliers = "".join(f'<li class=flag>{escape(str(o["signal"]))} {o["stat"]}: {escape(str(o["shard"]))} median '
                       f'{o["median"]:.4g} outside {o["range"][0]:.4g} .. {o["range"][1]:.4g} (5-95 % of the '
                       f'other shards\' records)</li>' for o in facts.outliers)
    return ("<h2>Signals</h2><p>Per signal: the distribution over records of the summary statistics and the NaN "
            "fraction (box: quartiles, line: 5-95 %); dots: each shard's median, red rings: outlying shards.</p>"
            + _table(["signal", "rows", "mean", "std", "NaN fraction"], rows, {1})
            + (f"<p>Outlying shards:</p><ul>{outliers}</ul>" if outliers else "<p>No outlying shard.</p>"))


def section_labels(facts: Facts) -> str:
    if not facts.splits:
        return ""
    per_label = facts.splits.get("per_label", {})
    counts = facts.splits.get("counts", {})
    rows = [[escape(label)] + [str(v.get(s, 0)) for s in counts] for label, v in sorted(per_label.items())]
    return ("<h2>Encoded labels per split</h2>" + charts.grouped_bars(dict(sorted(per_label.items())), "labels per split")
            + _table(["label"] + list(counts), rows + [["<b>all</b>"] + [f"<b>{n}</b>" for n in counts.values()]],
                     set(range(1, len(counts) + 1))))


def render(execution: Execution, facts: Facts) -> str:
    started = f"{execution.started:%Y-%m-%d %H:%M:%S %Z}" if execution.started else "-"
    missing = "".join(f"<li>{escape(m)}</li>" for m in facts.missing)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(execution.pipeline)} "
        f"{escape(execution.id)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(execution.pipeline)}: execution {escape(execution.id)}</h1>",
        f'<p class=meta>{escape(execution.status)} · started {started} · {escape(execution.where)}</p>',
        section_dag(execution), section_timeline(execution), section_shards(facts), section_errors(facts),
        section_signals(facts), section_labels(facts),
        f"<h2>Not shown</h2><ul>{missing}</ul>" if missing else "",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)

