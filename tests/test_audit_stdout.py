"""A stalled stdout (a log collector that stopped reading the pipe) must never hold up an
admission: the real webhook, its stdout a pipe nobody reads, still answers every review in
time, with and without the audit stream on stdout; what could not be written is dropped,
counted, and reported once stdout moves again."""

from __future__ import annotations

import fcntl
import os
import ssl
import time

import httpx
import pytest

from signer.trust.keys import load_public_key_file
from support.admission import pod, review
from support.audit import audited_webhook, push_signed_image, records
from webhook.audit.verify import verify

ANSWER_WITHIN_SECONDS = 5.0  # a generous deadline: the API server gives a webhook 10 s in all


@pytest.fixture(scope="module")
def signed(registry, key_dir) -> str:
    return push_signed_image(registry.host, "stdout/signed", key_dir)


def _stalled_pipe() -> tuple[int, int]:
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: full after a handful of lines
    return read, write


def _drain(read: int, until: bytes, seconds: float) -> bytes:
    """Read what the webhook wrote, once someone reads its stdout again."""
    os.set_blocking(read, False)
    data, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline and until not in data:
        try:
            chunk = os.read(read, 1 << 16)
            data += chunk
        except BlockingIOError:
            time.sleep(0.05)
    return data


@pytest.mark.parametrize("audit_stdout", [False, True], ids=["logs", "logs-and-audit-stream"])
def test_reviews_are_answered_while_stdout_is_stalled(tmp_path, key_dir, signed, audit_stdout):
    read, write = _stalled_pipe()
    audited = audited_webhook(tmp_path, key_dir, workers=1, extra=["--audit-stdout"] if audit_stdout else [],
                              preexec_fn=lambda: os.dup2(write, 1), env={"MODELSIGN_STDOUT_QUEUE_LINES": "50"})
    os.close(write)
    answers = []
    try:
        tls = ssl.create_default_context(cafile=str(audited.server.ca_file))
        with httpx.Client(base_url=audited.server.url, verify=tls, timeout=ANSWER_WITHIN_SECONDS) as client:
            for number in range(150):  # each line of log (and of audit stream) is ~1 KiB: far more than the pipe and the queue hold
                answer = client.post("/validate", content=review("Pod", pod(signed), uid=f"stalled-{number}"))
                answers.append(answer.json()["response"])
        output = _drain(read, b"stdout_lines_dropped", 20)
    finally:
        audited.server.stop()
        os.close(read)
    assert len(answers) == 150 and all(a["allowed"] for a in answers), [a for a in answers if not a["allowed"]][:2]
    assert b'"event": "stdout_lines_dropped"' in output and b'"log":' in output
    if audit_stdout:
        assert b'"audit":' in output.split(b"stdout_lines_dropped", 1)[1].split(b"\n", 1)[0]
    recorded = {e["record"]["review"]["uid"] for e in records(audited.log_dir) if e["record"]["type"] == "decision"}
    assert {a["uid"] for a in answers} <= recorded  # the file is the record: nothing lost there
    report = verify([audited.log_dir], [load_public_key_file(audited.audit_pub)], checkpoint_files=[audited.checkpoints])
    assert report.ok, report.problems
