"""The audit report as one self-contained HTML file: inline CSS and SVG charts, no scripts,
no external requests, every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

from webhook.audit.report import SUPERSEDED_HEADERS, TIME_HEADERS, Report, Section, describe_filters, integrity_status, short_time, superseded_rows

COLORS = {"allow": "#2e7d32", "deny": "#c62828", "warn": "#ef6c00", "error": "#6a1b9a"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;font-size:.82rem;margin:.6rem 0;table-layout:auto}th,td{border:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}td.num{text-align:right}.muted{color:#666;font-size:.85rem}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
.unverified{color:#ef6c00;font-weight:600}.cards{display:flex;gap:.8rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.5rem}.legend span{display:inline-block;margin-right:1rem}.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
code{font-size:.8rem;word-break:break-all}td.time{white-space:nowrap;overflow-wrap:normal}
caption{text-align:left;font-weight:600;padding:.3rem 0}th{white-space:nowrap;overflow-wrap:normal}td:first-child{min-width:4.5em}
"""


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]], *, numeric: Iterable[int] = (), caption: str = "") -> str:
    """Times in one line (`2026-11-30 03:44:08Z`); `headers` all empty: a fact table without a heading row."""
    headers, numeric = tuple(headers), frozenset(numeric)
    times = {i for i, h in enumerate(headers) if h in TIME_HEADERS}

    def cell(i: int, value: Any) -> str:
        css = " class=num" if i in numeric else " class=time" if i in times else ""
        return f"<td{css}>{escape('' if value is None else str(short_time(value) if i in times else value))}</td>"

    head = f"<thead><tr>{''.join(f'<th>{escape(h)}</th>' for h in headers)}</tr></thead>" if any(headers) else ""
    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{title}{head}<tbody>{body or '<tr><td colspan=99>none</td></tr>'}</tbody></table>"


def _section(section: Section) -> str:
    blocks = "".join(f"<p>{escape(block)}</p>" if isinstance(block, str) else _table(block.headers, block.rows, numeric=block.numeric, caption=block.caption)
                     for block in section.blocks)
    return f'<section id="{escape(section.id)}"><h2>{escape(section.title)}</h2>{blocks}</section>'


def _timeline_chart(report: Report) -> str:
    width, height, left, bottom = 1000, 260, 50, 40
    buckets = report.timeline
    peak = max([sum(counts.values()) for _, counts in buckets] + [1])
    slot = (width - left - 10) / max(len(buckets), 1)
    bars = []
    for index, (label, counts) in enumerate(buckets):
        y: float = height - bottom
        for outcome in ("allow", "warn", "error", "deny"):
            h = (height - bottom - 10) * counts[outcome] / peak
            if h > 0:
                bars.append(f'<rect class="bar-{outcome}" x="{left + index * slot + 1:.1f}" y="{y - h:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" '
                            f'fill="{COLORS[outcome]}"><title>{escape(label)} {outcome}: {counts[outcome]}</title></rect>')
                y -= h
    step = max(1, -(-len(buckets) // 10))  # at most ten labels, so they never touch
    labels = "".join(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - bottom + 16}" font-size="10" text-anchor="middle">{escape(label)}</text>'
                     for i, (label, _) in enumerate(buckets) if i % step == 0)
    axis = f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/><text x="{left - 6}" y="16" font-size="10" text-anchor="end">{peak}</text>' \
           f'<text x="{left - 6}" y="{height - bottom}" font-size="10" text-anchor="end">0</text>'
    legend = "".join(f'<span><i class="swatch" style="background:{c}"></i>{o}</span>' for o, c in COLORS.items())
    return (f'<figure id="chart-timeline"><svg role="img" aria-label="decisions per {report.timeline_unit}" viewBox="0 0 {width} {height}" width="100%">'
            f'{axis}{"".join(bars)}{labels}</svg><figcaption class="legend">Decisions per {report.timeline_unit} (UTC), {escape(short_time(report.period[0]))} to {escape(short_time(report.period[1]))}, {len(buckets)} bar(s): {legend}</figcaption></figure>')


def _denials_chart(report: Report) -> str:
    if not report.top_denials:
        return '<figure id="chart-denials"><p class="muted">No denials in the period.</p></figure>'
    width, row = 1000, 26
    height = row * len(report.top_denials) + 10
    peak = max(count for _, count in report.top_denials)
    bars = "".join(
        f'<text x="230" y="{i * row + 17}" font-size="12" text-anchor="end">{escape(code)}</text>'
        f'<rect class="bar-deny" x="240" y="{i * row + 4}" width="{680 * count / peak:.1f}" height="{row - 8}" fill="{COLORS["deny"]}"/>'
        f'<text x="{246 + 680 * count / peak:.1f}" y="{i * row + 17}" font-size="12">{count}</text>'
        for i, (code, count) in enumerate(report.top_denials)
    )
    return (f'<figure id="chart-denials"><svg role="img" aria-label="top denial reasons" viewBox="0 0 {width} {height}" width="100%">{bars}</svg>'
            "<figcaption>Top denial reasons (violation codes)</figcaption></figure>")


def render_html(report: Report) -> str:
    totals = report.totals
    integrity = report.integrity
    cards = "".join(f'<div class="card"><b>{totals[key]}</b>{label}</div>' for key, label in
                    (("decisions", "decisions"), ("allow", "allowed"), ("deny", "denied"), ("warn", "warned (would deny)"), ("error", "errors")))
    cards += f'<div class="card"><b>{report.namespaces}</b>namespaces</div><div class="card"><b>{report.artifacts}</b>artifact digests</div>'
    status = integrity_status(integrity, html=True)
    truncated = "".join(f'<p class="muted">{escape(name)}: first {len(getattr(report, name))} of {count} shown; the CSV export has every row.</p>'
                        for name, count in report.truncated.items())
    identity, *front = report.front
    sections = [
        _section(identity),
        f'<section id="summary"><h2>Summary</h2><p>Period {escape(report.period[0])} to {escape(report.period[1])} (UTC). Filters: '
        f'{escape(describe_filters(report.selection))}. Integrity: {status}. Dry runs: {report.dry_runs}.</p><div class="cards">{cards}</div></section>',
        f'<section id="charts"><h2>Decisions over time</h2>{_timeline_chart(report)}<h2>Top denial reasons</h2>{_denials_chart(report)}</section>',
        *(_section(section) for section in front),
        '<section id="integrity"><h2>Integrity</h2>' + f"<p>Result: {status}. Records checked: {integrity['records']}. "
        f"Checkpoints: {integrity['checkpoints']['verified']} verified of {integrity['checkpoints']['total']}.</p>" + _table(
            ("writer", "first seq", "last seq", "records", "gaps", "chain head", "checkpoints verified", "last checkpoint seq"),
            ((w["writer"], w["firstSeq"], w["lastSeq"], w["records"], w["gaps"], w["head"], w["checkpointsVerified"], w["lastCheckpointSeq"])
             for w in integrity["writers"]), numeric={1, 2, 3, 4, 6, 7})
        + _table(("kind", "where", "problem"), ((p["kind"], f"{p.get('file') or ''}:{p.get('line') or ''}", p["message"]) for p in integrity["problems"]))
        + ("<p>Decisions answered otherwise than recorded (the record was late; the superseded record says what was answered):</p>"
           + _table(SUPERSEDED_HEADERS, superseded_rows(integrity)) if integrity.get("superseded") else "")
        + "".join(f'<p class="muted">{escape(w)}</p>' for w in integrity["warnings"]) + "</section>",
        f'<section id="denials"><h2>Denials ({totals["deny"]})</h2>{truncated}' + _table(
            ("time", "object", "kind", "user", "codes", "message", "record"),
            ((d["time"], d["object"], d["kind"], d["user"], d["codes"], d["message"], d["record"]) for d in report.denials)) + "</section>",
        '<section id="approvals"><h2>Approvals relied on</h2>' + _table(
            ("artifact", "environment", "status", "approver", "requester", "ticket", "signed by", "expires", "decisions", "admitted", "evidence id"),
            ((a.get("artifact"), a.get("environment"), a.get("status"), a.get("approver"), a.get("requester"), a.get("ticket"), a.get("signer"),
              a.get("expiresAt"), a.get("decisions"), a.get("admitted"), a.get("id")) for a in report.approvals), numeric={8, 9}) + "</section>",
        '<section id="exceptions"><h2>Exceptions and errors</h2>' + _table(
            ("time", "type", "detail", "record"), ((e["time"], e["type"], e["detail"], e["record"]) for e in report.exceptions)) + "</section>",
        '<section id="changes"><h2>Policy and key changes, starts and stops</h2>' + _table(
            ("time", "event", "writer", "detail"), ((c["time"], c["type"], c["writer"], c["detail"]) for c in report.changes)) + "</section>",
    ]
    title = f"modelsign audit report {report.identity.report_id}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>'
            f'<h1>modelsign admission audit report</h1><p class="muted">Report {escape(report.identity.report_id)}, generated {escape(report.generated)} '
            f"by {escape(report.identity.generated_by)} with modelsign {escape(report.identity.version)}. "
            "Source: the webhook's hash-chained decision trail.</p>" + "".join(sections) + "</body></html>\n")
