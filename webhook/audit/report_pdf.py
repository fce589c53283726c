"""The audit report as PDF (fpdf2: pure Python, maintained, no system libraries): the same
sections as the HTML report, with the charts drawn as vector bars."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from fpdf import FPDF
from fpdf.enums import TableCellFillMode
from fpdf.fonts import FontFace

from webhook.audit.report import SUPERSEDED_HEADERS, TIME_HEADERS, Report, Section, describe_filters, integrity_status, short_time, superseded_rows
from webhook.audit.report_html import COLORS

PDF_TABLE_ROWS = 200  # per table; the CSV export has every row


def _latin1(value: Any) -> str:
    """The core PDF fonts speak Latin-1; anything else becomes '?' rather than failing."""
    return ("" if value is None else str(value)).encode("latin-1", "replace").decode("latin-1")


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


class _Document(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 8, f"modelsign audit report - page {self.page_no()}/{{nb}}", align="C")


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", "B", 13)
    pdf.ln(3)
    pdf.cell(0, 8, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)


def _paragraph(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")


def _cell(value: Any, width: float) -> str:
    """A cell that fits its column in at most a few lines (a long value would not fit a page)."""
    text = _latin1(value)
    limit = max(12, int(width * 6))
    return text if len(text) <= limit else text[:limit - 3] + "..."


WHITE = (255, 255, 255)


def _table(pdf: FPDF, headers: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[float], numeric: frozenset[int] = frozenset()) -> None:
    """`headers` all empty: a two-column fact table without a heading row."""
    rows = list(rows)
    pdf.set_font("Helvetica", size=7)
    pdf.set_fill_color(*WHITE)  # cells are never filled; a chart's colour must not leak into them
    with_headings = any(headers)
    try:
        with pdf.table(col_widths=tuple(widths), headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)), line_height=3.6,
                       text_align="LEFT", first_row_as_headings=with_headings, cell_fill_mode=TableCellFillMode.NONE) as table:
            if with_headings:
                table.row([_latin1(h) for h in headers])
            for row in rows[:PDF_TABLE_ROWS] or [["none"] + [""] * (len(headers) - 1)]:
                cells = table.row()
                for index, (value, width) in enumerate(zip(row, widths)):
                    cells.cell(_cell(value, width), align="RIGHT" if index in numeric else None)
    except Exception as exc:  # noqa: BLE001 - one table that will not lay out must not lose the report
        _paragraph(pdf, f"(this table could not be laid out: {exc}; the CSV export has its rows)")
    if len(rows) > PDF_TABLE_ROWS:
        _paragraph(pdf, f"First {PDF_TABLE_ROWS} of {len(rows)} rows; the CSV export has every row.")


def _widths(pdf: FPDF, weights: Sequence[int]) -> list[float]:
    total = sum(weights)
    return [pdf.epw * w / total for w in weights]


def _section(pdf: FPDF, section: Section) -> None:
    _heading(pdf, section.title)
    for block in section.blocks:
        if isinstance(block, str):
            _paragraph(pdf, block)
            continue
        if block.caption:
            pdf.set_font("Helvetica", "B", 9)
            pdf.cell(0, 6, _latin1(block.caption), new_x="LMARGIN", new_y="NEXT")
        rows = [tuple(short_time(c) if h in TIME_HEADERS else c for h, c in zip(block.headers, row)) for row in block.rows]
        _table(pdf, block.headers, rows, _widths(pdf, block.weights), block.numeric)
        pdf.ln(2)


def _fill(pdf: FPDF, outcome: str) -> None:
    pdf.set_fill_color(*_rgb(COLORS[outcome]))


def _timeline(pdf: FPDF, report: Report) -> None:
    """Stacked bars per bucket, the bucket size chosen by the period (report.py), with at most
    about ten one-line labels under the axis."""
    left, top, width, height = pdf.l_margin + 8, pdf.get_y() + 2, pdf.epw - 10, 50
    peak = max([sum(c.values()) for _, c in report.timeline] + [1])
    slot = width / max(len(report.timeline), 1)
    pdf.set_draw_color(150, 150, 150)
    pdf.line(left, top + height, left + width, top + height)
    for index, (_, counts) in enumerate(report.timeline):
        y = top + height
        for outcome in ("allow", "warn", "error", "deny"):
            h = height * counts[outcome] / peak
            if h > 0:
                _fill(pdf, outcome)
                pdf.rect(left + index * slot + 0.2, y - h, max(slot * 0.8, 0.2), h, style="F")
                y -= h
    pdf.set_fill_color(*WHITE)
    pdf.set_font("Helvetica", size=7)
    pdf.text(pdf.l_margin, top + 3, str(peak))
    pdf.text(pdf.l_margin, top + height, "0")
    step = max(1, -(-len(report.timeline) // 10))
    for index, (label, _) in enumerate(report.timeline):
        if index % step == 0:
            pdf.text(left + index * slot, top + height + 4, _latin1(label))
    pdf.set_y(top + height + 7)
    _paragraph(pdf, f"Decisions per {report.timeline_unit} (UTC), {short_time(report.period[0])} to {short_time(report.period[1])}; "
                    f"{len(report.timeline)} bar(s); each bar stacks green allow, orange warn, purple error, red deny.")


def _denial_bars(pdf: FPDF, report: Report) -> None:
    if not report.top_denials:
        _paragraph(pdf, "No denials in the period.")
        return
    peak = max(count for _, count in report.top_denials)
    pdf.set_font("Helvetica", size=8)
    for code, count in report.top_denials:
        y = pdf.get_y()
        pdf.cell(55, 5, _latin1(code), align="R")
        _fill(pdf, "deny")
        pdf.rect(pdf.l_margin + 57, y + 0.8, (pdf.epw - 75) * count / peak, 3.4, style="F")
        pdf.set_fill_color(*WHITE)
        pdf.set_x(pdf.l_margin + 59 + (pdf.epw - 75) * count / peak)
        pdf.cell(15, 5, str(count), new_x="LMARGIN", new_y="NEXT")


def render_pdf(report: Report) -> bytes:
    pdf = _Document(orientation="L", format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(f"modelsign admission audit report {report.identity.report_id}")
    pdf.set_creator(f"modelsign {report.identity.version}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "modelsign admission audit report", new_x="LMARGIN", new_y="NEXT")
    integrity = report.integrity
    status = integrity_status(integrity, html=False)
    totals = report.totals
    identity, *front = report.front
    _section(pdf, identity)
    _heading(pdf, "Summary")
    _paragraph(pdf, f"Period {report.period[0]} to {report.period[1]} (UTC). Filters: {describe_filters(report.selection)}. Integrity: {status}.")
    _paragraph(pdf, f"Decisions {totals['decisions']}: allowed {totals['allow']}, denied {totals['deny']}, warned {totals['warn']}, errors {totals['error']}; "
                    f"dry runs {report.dry_runs}; namespaces {report.namespaces}; artifact digests {report.artifacts}.")
    if pdf.get_y() + 75 > pdf.page_break_trigger:  # the chart is drawn at absolute positions: it needs its room on one page
        pdf.add_page()
    _heading(pdf, "Decisions over time")
    _timeline(pdf, report)
    _heading(pdf, "Top denial reasons")
    _denial_bars(pdf, report)
    for section in front:
        pdf.add_page()
        _section(pdf, section)
    pdf.add_page()
    _heading(pdf, "Integrity")
    _paragraph(pdf, f"Result: {status}. Records checked: {integrity['records']}. Checkpoints verified: {integrity['checkpoints']['verified']} "
                    f"of {integrity['checkpoints']['total']}.")
    _table(pdf, ("writer", "first seq", "last seq", "records", "gaps", "chain head", "checkpoints", "last checkpoint seq"),
           ((w["writer"], w["firstSeq"], w["lastSeq"], w["records"], w["gaps"], w["head"], w["checkpointsVerified"], w["lastCheckpointSeq"])
            for w in integrity["writers"]), (60, 16, 16, 16, 12, 100, 20, 22))
    if integrity["problems"]:
        _table(pdf, ("kind", "problem"), ((p["kind"], p["message"]) for p in integrity["problems"]), (30, 232))
    if integrity.get("superseded"):
        _paragraph(pdf, "Decisions answered otherwise than recorded (the record was late; the superseded record says what was answered):")
        _table(pdf, SUPERSEDED_HEADERS, superseded_rows(integrity), (80, 70, 50, 62))
    for warning in integrity["warnings"]:
        _paragraph(pdf, warning)
    pdf.add_page()
    _heading(pdf, f"Denials ({totals['deny']})")
    _table(pdf, ("time", "object", "kind", "user", "codes", "message", "record"),
           ((short_time(d["time"]), d["object"], d["kind"], d["user"], d["codes"], d["message"], d["record"]) for d in report.denials),
           (30, 36, 18, 26, 30, 84, 48))
    _heading(pdf, "Approvals relied on")
    _table(pdf, ("artifact", "env", "status", "approver", "requester", "ticket", "signed by", "expires", "decisions"),
           ((a.get("artifact"), a.get("environment"), a.get("status"), a.get("approver"), a.get("requester"), a.get("ticket"), a.get("signer"),
             short_time(a.get("expiresAt")), a.get("decisions")) for a in report.approvals), (70, 16, 18, 24, 24, 22, 24, 32, 18))
    _heading(pdf, "Exceptions and errors")
    _table(pdf, ("time", "type", "detail", "record"), ((short_time(e["time"]), e["type"], e["detail"], e["record"]) for e in report.exceptions),
           (30, 28, 164, 50))
    _heading(pdf, "Policy and key changes, starts and stops")
    _table(pdf, ("time", "event", "writer", "detail"), ((short_time(c["time"]), c["type"], c["writer"], c["detail"]) for c in report.changes),
           (30, 24, 70, 148))
    return bytes(pdf.output())
