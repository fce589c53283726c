"""picklescan as a second reader of plain pickles.

modelsign's own walker decides (it reads opcodes as CPython's unpickler does and allows only
listed globals); picklescan, the scanner behind the Hugging Face Hub, reads the same bytes
with `pickletools`. Where it completes and names a global the walker would not allow, the
two parsers disagree about the file, and a file two parsers read differently is not shown
safe. Where picklescan cannot parse a file the walker can (base-0 INT operands, for one), the
walker's reading stands: that is exactly where picklescan alone was evaded.
"""

from __future__ import annotations

import _compat_pickle
import logging

from signer.evidence.scan.modelfiles.allowlist import is_allowed
from signer.evidence.scan.modelfiles.source import Blob
from signer.evidence.scan.modelfiles.verdict import Verdict

logging.getLogger("picklescan").setLevel(logging.CRITICAL)  # its parse errors are ours to report


def check_with_picklescan(blob: Blob, verdict: Verdict) -> None:
    """Fail `verdict` (a plain pickle the walker found safe) if picklescan reads a global off
    the allow-list in it."""
    from picklescan.scanner import SafetyLevel, scan_pickle_bytes

    try:
        with blob.spool() as handle:  # picklescan seeks
            result = scan_pickle_bytes(handle, blob.label, multiple_pickles=True)
    except Exception:  # noqa: BLE001 - a third-party parser failing on hostile bytes: the walker's reading stands
        return
    if result.scan_err:
        return
    for found in result.globals:
        if is_allowed(found.module, found.name) or is_allowed(*_python3_name(found.module, found.name)):
            continue
        dangerous = " (on its dangerous list)" if found.safety == SafetyLevel.Dangerous else ""
        verdict.imports.append(f"{found.module}.{found.name}")
        verdict.fail(f"picklescan reads the global {found.module}.{found.name}{dangerous}, which modelsign's reading did not find: "
                     "the two parsers disagree about this file")


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """A Python 2 name as the unpickler imports it (picklescan reports names as written)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name
