"""The repository holds source only: no wheels, archives, binaries or build output."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_OUTPUT = (".whl", ".tar.gz", ".tgz", ".zip", ".egg", ".so", ".dylib", ".dll", ".exe", ".pyc", ".pyo", ".o", ".a", ".jar",
                ".tar", ".gz", ".xz", ".bz2", ".zst", ".7z", ".deb", ".rpm", ".iso", ".img", ".oci")
BUILD_DIRECTORIES = ("build/", "dist/", ".venv/", "node_modules/", "__pycache__/", ".eggs/", ".pytest_cache/", ".hypothesis/")


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")[:-1]


def test_no_build_output_archives_or_binaries_are_tracked():
    files = tracked_files()
    assert files, "git ls-files listed nothing: run the tests from a git checkout"
    offending = [f for f in files if f.lower().endswith(BUILD_OUTPUT) or any(f"/{d}" in f"/{f}" for d in BUILD_DIRECTORIES)]
    binary = []
    for name in files:
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if b"\0" in handle.read(8192):
                    binary.append(name)
    assert offending == [] and binary == [], (
        f"build output or archives tracked: {offending}; binary files tracked: {binary} "
        "(the repository holds source only: build them at test time, or download them in .ci/setup)")
