"""Model-file safety: find serialisations that can run code when loaded. Nothing is ever
unpickled, imported or executed.

"Safe" means positively shown safe: a data-only format that parses completely and agrees with
its sizes (safetensors, GGUF, ONNX, numpy `.npy`), or pickles that parse completely, opcode by
opcode as CPython's unpickler reads them, and import only globals on an explicit allow-list of
tensor-rebuild and container functions (`allowlist.py`). Anything that cannot be parsed
completely, and any other global, is unsafe. Archives (PyTorch zip checkpoints, `.npz`, tar)
and compressed pickles (joblib) are opened and every member judged.

Modules: `source` (bounded reading), `pickles` (the opcode walker), `picklefile` (whole files
of pickles: torch legacy, joblib), `formats`/`gguf`/`onnx` (data formats), `archives`
(containers), `torchtar` (torch's legacy tar layout), `dispatch` (which judge a file gets),
`bounds` (numbers kept to sizes a loader could use), and this scan over a directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signer.evidence.scan.modelfiles.archives import Context, is_model_name
from signer.evidence.scan.modelfiles.bounds import exception_text
from signer.evidence.scan.modelfiles.dispatch import KERAS_EXTENSIONS, PICKLE_EXTENSIONS, judge
from signer.evidence.scan.modelfiles.source import Budget, BudgetExceeded, FileBlob
from signer.evidence.scan.modelfiles.verdict import Verdict, cannot_judge

SCANNER = "modelsign-modelfiles 2"  # the predicate records which check made the verdicts
MAX_EXPANDED_BYTES = 16 * 1024**3  # what decompressing and spooling one file may produce
MAX_REPORTED_FILES = 1000


@dataclass
class ModelFileReport:
    scanner: str
    files: list[dict[str, Any]] = field(default_factory=list)
    unsafe: int = 0
    suspicious: int = 0  # kept for the predicate's shape: a global off the allow-list is unsafe, never "suspicious"
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"scanner": self.scanner, "unsafeFiles": self.unsafe, "suspiciousFiles": self.suspicious, "files": self.files, "truncated": self.truncated}


def classify_file(path: Path, loaded_as: str | None = None) -> dict[str, Any] | None:
    """One report entry, or None for files that are not model serialisations. Content decides,
    not the name alone: a pickle called `model.onnx` or `weights.model` is still found. A file
    that cannot be judged to the end, for whatever reason, is unsafe with that reason: never
    left out of the report, never a failed scan. `loaded_as`: the name loaders open it by,
    when that is another file's (a symlink's) name."""
    budget = Budget(MAX_EXPANDED_BYTES)
    try:
        verdict = judge(FileBlob(path, path.name), loaded_as or path.name, Context(budget))
    except BudgetExceeded as exc:
        verdict = Verdict.unsafe("archive", f"{exc}: too large to judge")
    except RecursionError:
        verdict = Verdict.unsafe("unknown", "nested too deeply to judge")
    except OSError as exc:
        verdict = Verdict.unsafe("unknown", f"cannot be read ({exception_text(exc)}): make the file readable to the scanner")
    except Exception as exc:  # noqa: BLE001 -- a judge that fails has not judged the file: fail closed, with the reason
        verdict = cannot_judge(exc)
    return verdict.entry() if verdict is not None else None


def _unreadable(error: OSError) -> None:
    raise error


def scan_model_files(root: Path) -> ModelFileReport:
    """Every file under `root` (no symlinks followed), relative paths in the report. A file
    that a symlink under `root` gives a model file's name (the Hugging Face cache links
    snapshots/<rev>/pytorch_model.bin to a name-less blobs/<sha256>) is judged under that name."""
    report = ModelFileReport(scanner=SCANNER)
    files, aliases = _files_and_model_aliases(root)
    for path in files:
        entry = classify_file(path, aliases.get(os.path.realpath(path)))
        if entry is None:
            continue
        if entry.get("safe") is False:
            report.unsafe += 1
        if len(report.files) < MAX_REPORTED_FILES:
            report.files.append({"path": path.relative_to(root).as_posix(), **entry})
        else:
            report.truncated = True
    return report


def _files_and_model_aliases(root: Path) -> tuple[list[Path], dict[str, str]]:
    """The regular files under `root` in walk order, and for each one a symlink under `root`
    points to with a model file's name, that name (the first in walk order)."""
    files: list[Path] = []
    aliases: dict[str, str] = {}
    inside = os.path.realpath(root) + os.sep
    for directory, _, names in os.walk(root, onerror=_unreadable):  # a directory it cannot list fails the scan
        for name in sorted(names):
            path = Path(directory) / name
            if path.is_symlink():
                target = os.path.realpath(path)
                if target.startswith(inside) and os.path.isfile(target) and is_model_name(name):
                    aliases.setdefault(target, name)
            elif path.is_file():
                files.append(path)
    return files, aliases


__all__ = ["KERAS_EXTENSIONS", "MAX_REPORTED_FILES", "PICKLE_EXTENSIONS", "SCANNER", "ModelFileReport", "classify_file", "scan_model_files"]
