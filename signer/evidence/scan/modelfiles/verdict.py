"""One judged file: its format, safe or not, and why, as a report entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signer.evidence.scan.modelfiles.bounds import exception_text

FIX = "convert the weights to safetensors (or another data-only format) and repackage"
FIX_DATA = "re-export it with the library that writes this format (a correct file parses completely), or convert the weights to safetensors"
DATA_FORMATS = {"safetensors", "gguf", "onnx", "npy"}
_SHOWN_ISSUES = 4


@dataclass
class Verdict:
    format: str
    safe: bool
    issues: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # globals outside the allow-list, module.name
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unsafe(cls, format: str, issue: str, **extra: Any) -> Verdict:
        return cls(format, False, [issue], extra=extra)

    def fail(self, issue: str) -> None:
        self.safe = False
        self.issues.append(issue)

    def entry(self) -> dict[str, Any]:
        """The report entry; `issue` says what failed and how to fix it."""
        out: dict[str, Any] = {"format": self.format, "safe": self.safe}
        if self.imports:
            out["dangerousImports"] = sorted(set(self.imports))
        if not self.safe:
            shown = list(dict.fromkeys(self.issues))
            more = f" (and {len(shown) - _SHOWN_ISSUES} more)" if len(shown) > _SHOWN_ISSUES else ""
            fix = FIX_DATA if self.format in DATA_FORMATS and not self.imports else FIX
            out["issue"] = "; ".join(shown[:_SHOWN_ISSUES]) + more + f"; {fix}"
        out.update(self.extra)
        return out


def cannot_judge(exc: BaseException, format: str = "unknown") -> Verdict:
    """A file or member whose judging failed: unsafe, with the reason."""
    return Verdict.unsafe(format, f"cannot be judged completely ({exception_text(exc)})")


def merge_members(format: str, judged: list[tuple[str, Verdict]], issues: list[str], **extra: Any) -> Verdict:
    """An archive's verdict: safe when it has no issue of its own and every judged member is safe."""
    merged = Verdict(format, not issues, list(issues), extra=dict(extra))
    for name, member in judged:
        merged.imports.extend(member.imports)
        if not member.safe:
            merged.safe = False
            merged.issues.extend(f"{name}: {issue}" for issue in member.issues)
    return merged
