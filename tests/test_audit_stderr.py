"""A stalled stderr (and stdout) must never hold up an admission: uvicorn's own loggers,
Python warnings, prints, thread tracebacks and anything else a server process writes go
through bounded non-blocking queues (webhook/logs.py), never a blocking write on the event
loop. The reviewer's F4: with stderr a pipe nobody read, 400 malformed requests each logged
"Invalid HTTP request received." synchronously, and signed Pods got no answer at all."""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from support.admission import pod, review
from support.audit import audited_webhook, push_signed_image, records

ANSWER_WITHIN_SECONDS = 5.0  # generous: the API server gives a webhook 10 s in all


def _stalled_pipe() -> tuple[int, int]:
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: full after a few lines
    return read, write


def _drain(read: int, seconds: float, until: bytes | None = None) -> bytes:
    """What the pipe holds once someone reads it: until EOF, `until` appears, or `seconds` pass."""
    os.set_blocking(read, False)
    data, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline and (until is None or until not in data):
        try:
            chunk = os.read(read, 1 << 16)
            if not chunk:
                break
            data += chunk
        except BlockingIOError:
            time.sleep(0.05)
    return data


# -- every way a process writes, with both pipes stalled ---------------------------------------------------------

EMITTERS = {
    "uvicorn-error-logger": 'logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")',
    "uvicorn-access-logger": 'logging.getLogger("uvicorn.access").warning("%s - %s", "203.0.113.9", "GET / HTTP/1.1")',
    "library-logger": 'logging.getLogger("some.library").error("boom %d", number)',
    "logger-with-traceback": 'logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=ValueError("x" * 200))',
    "warnings": 'warnings.warn(f"deprecated thing {number}", DeprecationWarning if number % 2 else UserWarning)',
    "print": 'print("a line of stdout", number)',
    "stderr-write": 'sys.stderr.write(f"a line of stderr {number}\\n")',
    "stderr-partial-lines": 'sys.stderr.write("no newline yet ")',
    "thread-exception": 'threading.Thread(target=lambda: 1 / 0).start()',
}
SCRIPT = """
import logging, logging.config, os, sys, threading, time, warnings
from webhook.logs import uvicorn_log_config
logging.config.dictConfig(uvicorn_log_config())  # what uvicorn does first in the server and in each worker
warnings.simplefilter("always")
start = time.monotonic()
for number in range({count}):
    {statement}
with open(sys.argv[1], "w") as out:
    out.write(str(time.monotonic() - start))
"""


@pytest.mark.parametrize("emitter", sorted(EMITTERS))
@pytest.mark.parametrize("wiring", ["one-pipe", "two-pipes"])
def test_nothing_a_process_writes_blocks_on_stalled_pipes(tmp_path, emitter, wiring):
    count = 300 if emitter == "thread-exception" else 20_000  # far more than a 4 KiB pipe holds
    out_read, out_write = _stalled_pipe()
    err_read, err_write = _stalled_pipe() if wiring == "two-pipes" else (out_read, out_write)
    timing = tmp_path / "seconds"
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.format(count=count, statement=EMITTERS[emitter]), str(timing)],
                               stdout=out_write, stderr=err_write, env={**os.environ, "MODELSIGN_STDOUT_QUEUE_LINES": "100"})
    for fd in {out_write, err_write}:
        os.close(fd)
    try:
        process.wait(timeout=30)  # including the exit, whose flush of what is queued is bounded too
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{emitter}: the process blocked on its stalled {wiring}")
    finally:
        for fd in {out_read, err_read}:
            os.close(fd)
    assert process.returncode == 0 and float(timing.read_text()) < 10.0


def test_what_is_written_arrives_as_json_once_the_pipe_moves(tmp_path):
    read, write = os.pipe()
    script = SCRIPT.format(count=3, statement='logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")\n'
                                              '    warnings.warn("old api")')
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "seconds")], stdout=write, stderr=write, timeout=30, check=True)
    os.close(write)
    output = _drain(read, 5)
    os.close(read)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert [line["event"] for line in lines if line["logger"] == "uvicorn.error"] == ["Invalid HTTP request received."] * 3
    assert any(line["logger"] == "py.warnings" and "old api" in line["event"] for line in lines)
    assert all(line["level"] and line["timestamp"] for line in lines)


# -- the real webhook ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signed(registry, key_dir) -> str:
    return push_signed_image(registry.host, "stderr/signed", key_dir)


def _garbage(url: str, ca_file, mode: str) -> None:
    host, port = url.removeprefix("https://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3) as raw:
            if mode == "plain-bytes":  # not even TLS
                raw.sendall(b"GARBAGE \x00\x01 nonsense\r\n\r\n")
                raw.recv(100)
                return
            with ssl.create_default_context(cafile=str(ca_file)).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GARBAGE \x00\x01 nonsense\r\n\r\n" if mode == "bad-http" else b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
                tls.settimeout(3)
                tls.recv(100)
    except (OSError, ssl.SSLError):
        pass


@pytest.mark.parametrize("wiring", ["one-pipe", "two-pipes"])
def test_malformed_requests_with_stalled_stdout_and_stderr_delay_no_review(tmp_path, key_dir, signed, wiring):
    out_read, out_write = _stalled_pipe()
    err_read, err_write = _stalled_pipe() if wiring == "two-pipes" else (out_read, out_write)

    def wire() -> None:
        os.dup2(out_write, 1)
        os.dup2(err_write, 2)

    audited = audited_webhook(tmp_path, key_dir, workers=1, preexec_fn=wire, env={"MODELSIGN_STDOUT_QUEUE_LINES": "200"})
    for fd in {out_write, err_write}:
        os.close(fd)
    server = audited.server
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: _garbage(server.url, server.ca_file, ("bad-http", "bad-header", "plain-bytes")[n % 3]), range(450)))
        tls = ssl.create_default_context(cafile=str(server.ca_file))
        answers = []
        with httpx.Client(base_url=server.url, verify=tls, timeout=ANSWER_WITHIN_SECONDS) as client:
            for number in range(20):
                start = time.monotonic()
                answer = client.post("/validate", content=review("Pod", pod(signed), uid=f"after-garbage-{number}")).json()["response"]
                answers.append((time.monotonic() - start, answer))
        stdout = _drain(out_read, 10, until=b"lines_dropped")  # the report of what the stall cost comes once the pipe moves
        stderr = _drain(err_read, 1) if wiring == "two-pipes" else b""
    finally:
        server.stop()
        for fd in {out_read, err_read}:
            os.close(fd)
    assert all(answer["allowed"] for _, answer in answers) and max(seconds for seconds, _ in answers) < ANSWER_WITHIN_SECONDS
    events = [json.loads(line).get("event") for line in stdout.splitlines() if line.startswith(b"{")]
    assert "Invalid HTTP request received." in events and "stdout_lines_dropped" in events, stdout[-2000:]
    assert not any(b"Invalid HTTP request received." in line and not line.startswith(b"{") for line in stdout.splitlines() + stderr.splitlines())
    recorded = {e["record"]["review"]["uid"] for e in records(audited.log_dir) if e["record"]["type"] == "decision"}
    assert {a["uid"] for _, a in answers} <= recorded
