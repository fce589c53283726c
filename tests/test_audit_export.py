"""Exports for auditors, from a trail the running webhook wrote: CSV and JSONL that match the
log, an HTML report rendered by headless Chromium (screenshot checked), a PDF read back with
pdftotext, and the signed manifest."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PASSWORD, run_cli
from support.audit import audited_webhook, copy_trail, post_reviews, push_signed_image, records
from signer.trust.keys import load_public_key_file, load_signing_key_file
from webhook.audit.export import CSV_COLUMNS
from webhook.audit.trail import AuditTrail
from webhook.audit.writer import AuditSettings, AuditWriter

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def trail(tmp_path_factory, registry, key_dir):
    workdir = tmp_path_factory.mktemp("exported")
    signed = push_signed_image(registry.host, "export/signed", key_dir)
    audited = audited_webhook(workdir, key_dir)
    images = [signed if i % 4 else "docker.io/library/nginx:1" for i in range(60)]
    try:
        post_reviews(audited.server, images, namespaces=("prod", "staging", "ml"))
    finally:
        audited.server.stop()
    # A third writer, in-process, adds records the webhook would not make here: an approval the
    # decision relied on, and text a spreadsheet would run as a formula.
    key = load_signing_key_file(audited.workdir / "audit.key", password=lambda _: PASSWORD.encode())
    writer = AuditWriter(AuditSettings(path=audited.log_dir / "audit.jsonl", key=key, checkpoint_path=audited.checkpoints))
    trail = AuditTrail(writer)
    trail.event("decision", review={"uid": "u-formula", "dryRun": False, "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                    "namespace": "prod", "name": "=HYPERLINK(\"http://evil\")"},
                user={"username": "+alice", "uid": "", "groups": []},
                artifacts=[{"reference": "registry.example/m:1", "digest": "sha256:" + "1" * 64, "signers": ["ml-team"], "signatures": ["k"], "scans": [],
                            "approvals": [{"id": "sha256:" + "2" * 64, "signer": "approver", "approver": "alice", "requester": "bob", "ticket": "CHG-1",
                                           "environment": "prod", "status": "active", "expiresAt": "2099-01-01T00:00:00Z"}]}],
                decision={"id": "d-formula", "outcome": "allow", "allowed": True, "mode": "enforce", "reason": "verified", "codes": [],
                          "message": "@SUM(1+1)", "warnings": []},
                policy={"name": "audited", "hash": "sha256:" + "3" * 64}, latencyUs=1500)
    trail.close()
    return audited


def _export(capsys, trail, out: Path, *formats: str, extra: tuple = ()) -> tuple[int, str, str]:
    flags = [f for fmt in formats for f in ("--format", fmt)]
    return run_cli(capsys, "audit", "export", trail.log_dir, *flags, "-o", out, "--key", trail.audit_pub, "--checkpoints", trail.checkpoints,
                   "--signing-key", trail.workdir / "audit.key", *extra)


@pytest.fixture(autouse=True)
def _audit_password(monkeypatch):
    monkeypatch.setenv("MODELSIGN_AUDIT_PASSWORD", "test-password")


def test_csv_parses_and_matches_the_log(capsys, trail, tmp_path):
    code, out, err = _export(capsys, trail, tmp_path / "decisions.csv", "csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO((tmp_path / "decisions.csv").read_text(encoding="utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    logged = {(e["writer"], e["seq"]): e for e in records(trail.log_dir) if e["record"]["type"] == "decision"}
    assert len(rows) - 1 == len(logged) == 61
    for row in rows[1:]:
        fields = dict(zip(CSV_COLUMNS, row))
        entry = logged[(fields["writer"], int(fields["seq"]))]
        record = entry["record"]
        assert fields["review_uid"] == record["review"]["uid"] and fields["outcome"] == record["decision"]["outcome"]
        assert fields["record_hash"] == entry["hash"] and fields["namespace"] == record["review"]["namespace"]
    formula = next(dict(zip(CSV_COLUMNS, r)) for r in rows[1:] if r[CSV_COLUMNS.index("review_uid")] == "u-formula")
    assert formula["name"] == "'=HYPERLINK(\"http://evil\")" and formula["username"] == "'+alice" and formula["message"] == "'@SUM(1+1)"


def test_jsonl_lines_carry_the_chain_hashes(capsys, trail, tmp_path):
    code, _, err = _export(capsys, trail, tmp_path / "decisions.jsonl", "jsonl", extra=("--namespace", "prod", "--decision", "deny"))
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert lines and all(line["review"]["namespace"] == "prod" and line["decision"]["outcome"] == "deny" for line in lines)
    hashes = {(e["writer"], e["seq"]): e["hash"] for e in records(trail.log_dir)}
    assert all(hashes[(line["writer"], line["seq"])] == line["hash"] for line in lines)


def test_period_filters(capsys, trail, tmp_path):
    code, out, _ = _export(capsys, trail, tmp_path / "future.csv", "csv", extra=("--since", "2099-01-01"))
    assert code == 0 and "(0 decision(s))" in out
    code, _, err = _export(capsys, trail, tmp_path / "bad.csv", "csv", extra=("--until", "next tuesday"))
    assert code == 2 and "--until 'next tuesday' is not a date" in err
    code, out, err = _export(capsys, trail, tmp_path / "reversed.csv", "csv", extra=("--since", "2026-11-02", "--until", "2026-11-01"))
    assert code == 2 and "--since 2026-11-02T00:00:00+00:00 is not before --until 2026-11-01T00:00:00+00:00: the period would be empty" in err
    assert "swap them" in err and not (tmp_path / "reversed.csv").exists()


def test_html_report_renders_in_headless_chromium(capsys, trail, tmp_path):
    from PIL import Image

    assert CHROMIUM, "Debian's chromium is needed: `bash .ci/setup --test` installs it"
    code, _, err = _export(capsys, trail, tmp_path / "report.html", "html")
    assert code == 0, err
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}", "--hide-scrollbars"]
    page = (tmp_path / "report.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    for section in ("identity", "summary", "charts", "scope", "policy", "soc2", "sample", "integrity", "denials", "approvals", "exceptions", "changes"):
        assert f'id="{section}"' in dom, section
    assert dom.count('class="bar-deny"') >= 2 and 'class="bar-allow"' in dom  # timeline and top-reasons bars, as rendered
    assert "INTACT" in dom and "CC6.8" in dom and "CHG-1" in dom and "registry-not-allowed" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1280,1600", f"--screenshot={shot}", page], capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1600)
    colors = image.getcolors(maxcolors=1 << 20)
    red = sum(count for count, rgb in colors if abs(rgb[0] - 0xC6) < 12 and abs(rgb[1] - 0x28) < 12 and abs(rgb[2] - 0x28) < 12)
    green = sum(count for count, rgb in colors if abs(rgb[0] - 0x2E) < 12 and abs(rgb[1] - 0x7D) < 12 and abs(rgb[2] - 0x32) < 12)
    assert red > 2000 and green > 2000, (red, green)  # the charts are drawn, not just present in the file


def test_pdf_report_has_the_sections(capsys, trail, tmp_path):
    code, _, err = _export(capsys, trail, tmp_path / "report.pdf", "pdf")
    assert code == 0, err
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    for heading in ("modelsign admission audit report", "Report identity", "Summary", "Decisions over time", "Top denial reasons", "Scope",
                    "Policy in force", "SOC 2 controls tested", "Population and sample", "Integrity", "Denials", "Approvals relied on",
                    "Exceptions and errors", "Policy and key changes"):
        assert heading in text, heading
    assert "INTACT" in text and "CHG-1" in text
    info = subprocess.run(["pdfinfo", str(tmp_path / "report.pdf")], capture_output=True, text=True, check=True).stdout
    assert int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:"))) >= 4


def test_manifest_is_signed_and_catches_changes(capsys, trail, tmp_path):
    out = tmp_path / "package"
    code, _, err = _export(capsys, trail, out, "csv", "jsonl", "html")
    assert code == 0, err
    [manifest_path] = out.glob("*.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    report_id = manifest["reportId"]
    assert manifest_path.name == f"audit-report-{report_id}.manifest.json"
    assert sorted(f["name"] for f in manifest["files"]) == [f"audit-report-{report_id}.{fmt}" for fmt in ("csv", "html", "jsonl")]
    assert manifest["integrity"]["ok"] and manifest["generatedBy"] and manifest["modelsignVersion"]
    key_id = load_public_key_file(trail.audit_pub, name="audit").key_id
    assert manifest["auditKeys"] == [f"{key_id} (audit.pub)"]
    code, text, _ = run_cli(capsys, "audit", "verify-export", manifest_path, "--key", trail.audit_pub)
    assert code == 0 and "export intact" in text
    # A second export into the same folder keeps the first one's files and proof.
    code, _, err = _export(capsys, trail, out, "csv", "pdf")
    assert code == 0, err
    assert len(list(out.glob("*.manifest.json"))) == 2
    code, text, _ = run_cli(capsys, "audit", "verify-export", out, "--key", trail.audit_pub)
    assert code == 0 and text.count("export intact") == 2 and "NOT intact" not in text
    with (out / f"audit-report-{report_id}.csv").open("a") as handle:
        handle.write("extra,row\n")
    code, text, _ = run_cli(capsys, "audit", "verify-export", out, "--key", trail.audit_pub)
    assert code == 1 and f"CHANGED  audit-report-{report_id}.csv" in text and text.count("export intact") == 1
    other = trail.workdir.parent / "other.pub"
    shutil.copy(Path(__file__).parent / "fixtures" / "cosign" / "kwctl__cosign1.pub", other)
    code, text, _ = run_cli(capsys, "audit", "verify-export", manifest_path, "--key", other)
    assert code == 1 and "signature: INVALID" in text


def test_a_single_file_export_names_its_manifest_and_never_replaces_it(capsys, trail, tmp_path):
    code, _, err = _export(capsys, trail, tmp_path / "october.pdf", "pdf")
    assert code == 0, err
    proof = tmp_path / "october.pdf.manifest.json"
    first = proof.read_bytes()
    assert [f["name"] for f in json.loads(first)["files"]] == ["october.pdf"]
    code, _, err = _export(capsys, trail, tmp_path / "october.pdf", "pdf")
    assert code == 2 and "october.pdf.manifest.json already exists: it is the signed proof of an earlier export" in err
    assert proof.read_bytes() == first
    code, text, _ = run_cli(capsys, "audit", "verify-export", proof, "--key", trail.audit_pub)
    assert code == 0 and "export intact" in text


def test_sample_is_reproducible(capsys, trail, tmp_path):
    _export(capsys, trail, tmp_path / "a.html", "html")
    _export(capsys, trail, tmp_path / "b.html", "html")
    _export(capsys, trail, tmp_path / "c.html", "html", extra=("--seed", "7"))

    def sample(name: str) -> str:
        return (tmp_path / name).read_text().split('id="sample"', 1)[1]

    assert sample("a.html").split("</h2>", 1)[1] == sample("b.html").split("</h2>", 1)[1]
    assert "seed 7" in sample("c.html") and sample("c.html").split("</p>", 1)[1] != sample("a.html").split("</p>", 1)[1]


def test_a_damaged_trail_is_exported_with_the_damage_shown(capsys, trail, tmp_path):
    log_dir, checkpoints = copy_trail(trail, tmp_path)
    target = max(log_dir.glob("audit-*.jsonl"), key=lambda p: p.stat().st_size)
    lines = target.read_bytes().split(b"\n")
    del lines[len(lines) // 2]
    target.write_bytes(b"\n".join(lines))
    code, _, err = run_cli(capsys, "audit", "export", log_dir, "--format", "html", "-o", tmp_path / "r.html", "--key", trail.audit_pub,
                           "--checkpoints", checkpoints)
    assert code == 1 and "the trail is DAMAGED" in err
    html = (tmp_path / "r.html").read_text()
    assert "DAMAGED" in html and "missing before" in html


def test_pdf_survives_overlong_values(tmp_path):
    from webhook.audit.export import Selection, Trail
    from webhook.audit.report import ReportIdentity, build_report
    from webhook.audit.report_pdf import render_pdf
    from webhook.audit.verify import VerifyReport

    record = {"type": "decision", "time": "2026-11-01T00:00:00Z", "_writer": "w", "_seq": 1, "_hash": "sha256:" + "0" * 64,
              "review": {"namespace": "n" * 500, "name": "x" * 3000, "kind": {"kind": "Pod"}}, "user": {"username": "ü" * 400},
              "artifacts": [{"digest": "sha256:" + "1" * 64, "approvals": [{"id": "i", "environment": "W" * 400, "ticket": "T" * 900}]}],
              "decision": {"outcome": "deny", "allowed": False, "codes": ["c" * 300], "message": "m" * 20000}}
    identity = ReportIdentity(report_id="r", generated="2026-11-01T00:00:00Z", generated_by="tester", version="0", audit_keys=[])
    report = build_report(Trail([record]), Selection(), VerifyReport(), sample_size=5, seed=1, identity=identity)
    pdf = render_pdf(report)
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "Denials (1)" in text and "WWWW" in text


def test_without_a_key_no_format_calls_the_trail_verified(capsys, trail, tmp_path):
    out = tmp_path / "unkeyed"
    code, _, err = run_cli(capsys, "audit", "export", trail.log_dir, "--format", "html", "--format", "pdf", "--format", "csv", "-o", out,
                           "--checkpoints", trail.checkpoints)
    assert code == 1 and "integrity not verified: no audit key given" in err
    html = next(out.glob("*.html")).read_text()
    assert "UNVERIFIED: integrity not verified: no audit key given" in html and "INTACT" not in html and 'class="ok"' not in html
    assert "Checkpoints: 0 verified of" in html and "none: the trail&#x27;s integrity was NOT verified" in html
    text = subprocess.run(["pdftotext", "-layout", str(next(out.glob("*.pdf"))), "-"], capture_output=True, text=True, check=True).stdout
    assert "integrity not verified: no audit key given" in " ".join(text.split()) and "INTACT" not in text
    integrity = json.loads(next(out.glob("*.manifest.json")).read_text())["integrity"]
    assert integrity["status"] == "UNVERIFIED" and integrity["ok"] is False and integrity["note"] == "integrity not verified: no audit key given"
    assert all(w["checkpointsVerified"] == 0 for w in integrity["writers"])
