"""The audit report as PDF (fpdf2: pure Python, maintained, no system libraries): the same
sections as the HTML report, with the charts drawn as vector bars."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from fpdf import FPDF
from fpdf.fonts import FontFace

from webhook.audit.report import SUPERSEDED_HEADERS, Report, describe_filters, integrity_status, superseded_rows
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


def _cell(value: Any, width: int) -> str:
    """A cell that fits its column in at most a few lines (a long value would not fit a page)."""
    text = _latin1(value)
    limit = max(12, width * 6)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _table(pdf: FPDF, headers: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[int]) -> None:
    rows = list(rows)
    pdf.set_font("Helvetica", size=7)
    try:
        with pdf.table(col_widths=widths, headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)), line_height=3.6, text_align="LEFT") as table:
            table.row([_latin1(h) for h in headers])
            for row in rows[:PDF_TABLE_ROWS] or [["none"] + [""] * (len(headers) - 1)]:
                table.row([_cell(c, w) for c, w in zip(row, widths)])
    except Exception as exc:  # noqa: BLE001 - one table that will not lay out must not lose the report
        _paragraph(pdf, f"(this table could not be laid out: {exc}; the CSV export has its rows)")
    if len(rows) > PDF_TABLE_ROWS:
        _paragraph(pdf, f"First {PDF_TABLE_ROWS} of {len(rows)} rows; the CSV export has every row.")


def _timeline(pdf: FPDF, report: Report) -> None:
    left, top, width, height = pdf.l_margin + 8, pdf.get_y() + 2, pdf.epw - 10, 55
    peak = max([sum(c.values()) for _, c in report.timeline] + [1])
    slot = width / max(len(report.timeline), 1)
    pdf.set_draw_color(150, 150, 150)
    pdf.line(left, top + height, left + width, top + height)
    for index, (_, counts) in enumerate(report.timeline):
        y = top + height
        for outcome in ("allow", "warn", "error", "deny"):
            h = height * counts[outcome] / peak
            if h > 0:
                pdf.set_fill_color(*_rgb(COLORS[outcome]))
                pdf.rect(left + index * slot + 0.2, y - h, max(slot - 0.4, 0.2), h, style="F")
                y -= h
    pdf.set_font("Helvetica", size=7)
    pdf.text(pdf.l_margin, top + 3, str(peak))
    pdf.text(pdf.l_margin, top + height, "0")
    pdf.set_y(top + height + 3)
    _paragraph(pdf, f"Decisions per {report.timeline_unit} (UTC), {report.timeline[0][0] if report.timeline else ''} to "
                    f"{report.timeline[-1][0] if report.timeline else ''}: green allow, orange warn, purple error, red deny.")


def _denial_bars(pdf: FPDF, report: Report) -> None:
    if not report.top_denials:
        _paragraph(pdf, "No denials in the period.")
        return
    peak = max(count for _, count in report.top_denials)
    pdf.set_font("Helvetica", size=8)
    for code, count in report.top_denials:
        y = pdf.get_y()
        pdf.cell(55, 5, _latin1(code), align="R")
        pdf.set_fill_color(*_rgb(COLORS["deny"]))
        pdf.rect(pdf.l_margin + 57, y + 0.8, (pdf.epw - 75) * count / peak, 3.4, style="F")
        pdf.set_x(pdf.l_margin + 59 + (pdf.epw - 75) * count / peak)
        pdf.cell(15, 5, str(count), new_x="LMARGIN", new_y="NEXT")


def render_pdf(report: Report) -> bytes:
    pdf = _Document(orientation="L", format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title("modelsign admission audit report")
    pdf.set_creator("modelsign")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "modelsign admission audit report", new_x="LMARGIN", new_y="NEXT")
    integrity = report.integrity
    status = integrity_status(integrity, html=False)
    totals = report.totals
    _heading(pdf, "Summary")
    _paragraph(pdf, f"Period {report.period[0]} to {report.period[1]} (UTC). Generated {report.generated}. Filters: {describe_filters(report.selection)}. "
                    f"Integrity: {status}.")
    _paragraph(pdf, f"Decisions {totals['decisions']}: allowed {totals['allow']}, denied {totals['deny']}, warned {totals['warn']}, errors {totals['error']}; "
                    f"dry runs {report.dry_runs}; namespaces {report.namespaces}; artifact digests {report.artifacts}.")
    _heading(pdf, "Decisions over time")
    _timeline(pdf, report)
    _heading(pdf, "Top denial reasons")
    _denial_bars(pdf, report)
    pdf.add_page()
    _heading(pdf, "SOC 2 criteria mapping")
    _table(pdf, ("criterion", "title", "what this trail shows", "denied", "warned", "codes"),
           ((c["criterion"], c["title"], c["statement"], c["denied"], c["warned"], "; ".join(c["codes"])) for c in report.soc2), (14, 40, 120, 14, 14, 60))
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
    _table(pdf, ("time", "object", "kind", "user", "codes", "message"),
           ((d["time"], d["object"], d["kind"], d["user"], d["codes"], d["message"]) for d in report.denials), (34, 36, 24, 34, 30, 104))
    _heading(pdf, "Approvals relied on")
    _table(pdf, ("artifact", "env", "status", "approver", "requester", "ticket", "signed by", "expires", "decisions"),
           ((a.get("artifact"), a.get("environment"), a.get("status"), a.get("approver"), a.get("requester"), a.get("ticket"), a.get("signer"),
             a.get("expiresAt"), a.get("decisions")) for a in report.approvals), (70, 16, 18, 24, 24, 22, 24, 34, 18))
    _heading(pdf, "Exceptions and errors")
    _table(pdf, ("time", "type", "detail"), ((e["time"], e["type"], e["detail"]) for e in report.exceptions), (36, 28, 198))
    _heading(pdf, "Policy and key changes, starts and stops")
    _table(pdf, ("time", "event", "writer", "detail"), ((c["time"], c["type"], c["writer"], c["detail"]) for c in report.changes), (36, 24, 70, 132))
    pdf.add_page()
    _heading(pdf, f"Sample of decisions (seed {report.sample_seed})")
    _table(pdf, ("time", "outcome", "object", "kind", "user", "codes", "record"),
           ((s["time"], s["outcome"], s["object"], s["kind"], s["user"], s["codes"], s["record"]) for s in report.sample), (34, 16, 40, 26, 40, 40, 66))
    return bytes(pdf.output())
