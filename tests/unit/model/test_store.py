"""The on-device model store: install, switch, roll back, prune, and survive a kill at every step."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.model.archive import Limits
from agent.model.package import file_sha256
from agent.model.store import ModelStore, is_complete, restore_link, verify
from tests.support.paths import REPO
from tests.unit.deploy.packages import break_manifest_checksum, make_package, make_tarball, truncate_model


def installed(tmp_path: Path, store: ModelStore, *versions: str) -> None:
    for v in versions:
        store.install(make_package(tmp_path / "src", version=v))
        store.activate("demo", v)


def test_install_and_activate_points_current_at_the_package(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    dest = store.install(make_package(tmp_path))
    assert dest == store.root / "demo" / "1.0.0"
    assert store.current("demo") is None
    store.activate("demo", "1.0.0")
    assert os.readlink(store.root / "demo" / "current") == "1.0.0"
    assert is_complete(store.root / "demo" / "current")
    assert store.history("demo") == ["1.0.0"]
    assert store.models() == ["demo"] and store.versions("demo") == ["1.0.0"]


def test_install_from_tarball(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    dest = store.install(make_tarball(make_package(tmp_path, version="2.0.0")))
    assert dest.name == "2.0.0"
    assert (dest / "golden" / "expected.json").is_file()
    assert not [p for p in (store.root / "demo").iterdir() if p.name.startswith(".")]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".incoming")]


def test_reinstalling_same_content_is_a_no_op(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    pkg = make_package(tmp_path)
    dest = store.install(pkg)
    before = (dest / "model.tflite").stat().st_ino
    assert store.install(pkg) == dest
    assert (dest / "model.tflite").stat().st_ino == before  # not copied again


def test_same_version_with_other_content_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    store.install(make_package(tmp_path / "a"))
    other = make_package(tmp_path / "b", payload=b"different weights")
    with pytest.raises(ModelError, match="already installed with other content"):
        store.install(other)


@pytest.mark.parametrize("bad", ["../evil", "current", ".hidden", "a/b"])
def test_unsafe_version_names_are_refused(tmp_path: Path, bad: str) -> None:
    pkg = make_package(tmp_path)
    text = (pkg / "manifest.yaml").read_text().replace("version: 1.0.0", f"version: '{bad}'")
    (pkg / "manifest.yaml").write_text(text)
    with pytest.raises(ModelError, match="cannot be used as a directory name"):
        ModelStore(tmp_path / "store").install(pkg)
    assert not (tmp_path / "evil").exists()


def test_a_package_failing_its_checksums_is_not_installed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    pkg = make_package(tmp_path)
    truncate_model(pkg)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        store.install(pkg)
    assert store.versions("demo") == []


def test_not_a_package_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="not a package directory or tar archive"):
        store.install(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"no manifest\.yaml"):
        store.install(tmp_path / "empty")


# --- archives reaching the store (the device's install path): one bounded extractor -------------


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _package_members(tmp_path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    pkg = make_package(tmp_path / "src")
    return [_file(f"pkg/{p.relative_to(pkg)}", p.read_bytes()) for p in sorted(pkg.rglob("*")) if p.is_file()]


def test_tarball_with_path_escape_is_refused(tmp_path: Path) -> None:
    bad = _tar(tmp_path / "bad.tar", [_file("../escape.txt", b"hi")])
    with pytest.raises(ModelError, match=r"refusing member '\.\./escape\.txt'"):
        ModelStore(tmp_path / "store").install(bad)
    assert not (tmp_path / "escape.txt").exists()


def test_tarball_with_a_link_is_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("pkg/model.tflite")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    bad = _tar(tmp_path / "bad.tar", [(link, b"")])
    with pytest.raises(ModelError, match="links and special files"):
        ModelStore(tmp_path / "store").install(bad)


def test_tarball_claiming_a_huge_member_is_refused_before_any_write(tmp_path: Path) -> None:
    """A header announcing 5 GiB (a gzip bomb looks the same): refused on the headers alone."""
    members = _package_members(tmp_path)
    huge = tarfile.TarInfo("pkg/golden/huge.bin")
    huge.size = 5 << 30
    bad = tmp_path / "bomb.tar"
    _tar(bad, members)
    with bad.open("r+b") as fh:  # append the lying header in place of the end-of-archive blocks
        fh.seek(sum(512 + (len(d) + 511) // 512 * 512 for _, d in members))
        fh.write(huge.tobuf(tarfile.GNU_FORMAT))
        fh.truncate()
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelError, match=f"would unpack to more than {4 << 30} bytes"):
        store.install(bad)
    assert store.models() == []
    assert [p.name for p in store.root.iterdir()] == [".lock"]


def test_tarball_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    bad = _tar(tmp_path / "big.tar", [*_package_members(tmp_path), _file("pkg/golden/x.bin", b"x" * 300_000)])
    store = ModelStore(tmp_path / "store", limits=Limits(max_bytes=250_000))
    with pytest.raises(ModelError, match="would unpack to more than 250000 bytes"):
        store.install(bad)
    assert store.models() == []


def test_tarball_with_too_many_members_is_refused(tmp_path: Path) -> None:
    """Ten thousand empty files beside a valid package: refused, nothing installed."""
    filler = [_file(f"pkg/golden/{i}.png", b"") for i in range(10_001)]
    bad = _tar(tmp_path / "many.tar", [*_package_members(tmp_path), *filler])
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelError, match="more than 10000 members"):
        store.install(bad)
    assert store.models() == []


def test_tarball_within_the_limits_installs(tmp_path: Path) -> None:
    members = _package_members(tmp_path)
    ok = _tar(tmp_path / "ok.tar", members)
    total = sum(len(d) for _, d in members)
    store = ModelStore(tmp_path / "store", limits=Limits(max_bytes=total, max_members=len(members) + 1))
    assert store.install(ok) == store.root / "demo" / "1.0.0"


# --- switching ----------------------------------------------------------------------------------


def test_activate_unknown_version_is_refused_and_current_unchanged(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0")
    with pytest.raises(ModelError, match="not installed"):
        store.activate("demo", "9.9.9")
    assert store.current("demo") == "1.0.0"


def test_rollback_goes_back_one_version_at_a_time(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0", "1.1.0", "1.2.0")
    assert store.rollback("demo") == "1.1.0"
    assert store.rollback("demo") == "1.0.0"
    with pytest.raises(ModelError, match="no earlier version"):
        store.rollback("demo")
    assert store.current("demo") == "1.0.0"


def test_rollback_after_a_switch_the_history_missed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0")
    store.install(make_package(tmp_path / "src2", version="2.0.0"))
    os.replace(_symlink(store.root / "demo", "2.0.0"), store.root / "demo" / "current")  # history not written
    assert store.rollback("demo") == "1.0.0"


def test_an_absolute_current_link_reads_as_its_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0", "2.0.0")
    link = store.root / "demo" / "current"
    os.replace(_symlink(store.root / "demo", str(store.root / "demo" / "1.0.0")), link)
    assert store.current("demo") == "1.0.0"
    with pytest.raises(ModelError, match="no earlier version"):
        store.rollback("demo")
    store.install(make_package(tmp_path / "v3", version="3.0.0"))
    store.activate("demo", "3.0.0")
    assert store.rollback("demo") == "1.0.0"


def _symlink(model_dir: Path, target: str) -> Path:
    tmp = model_dir / "hand.tmp"
    tmp.symlink_to(target)
    return tmp


def test_restore_link_goes_through_the_store_and_its_history(tmp_path: Path) -> None:
    """What the agent's hot swap does after a failed swap: `current` back, and the history knows."""
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0", "2.0.0")
    restore_link(store.root / "demo" / "current", (store.root / "demo" / "1.0.0").resolve())
    assert os.readlink(store.root / "demo" / "current") == "1.0.0"
    assert store.history("demo") == ["2.0.0", "1.0.0"]


def test_restore_link_outside_a_store_replaces_the_link(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    link = tmp_path / "model"
    link.symlink_to(b)
    restore_link(link, a)
    assert link.resolve() == a
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "model"]


def test_prune_keeps_current_and_recent_versions(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0", "1.1.0", "1.2.0", "1.3.0")
    store.install(make_package(tmp_path / "x", version="0.9.0"))  # never activated
    removed = store.prune("demo", keep=2)
    assert sorted(removed) == ["0.9.0", "1.0.0", "1.1.0"]
    assert store.versions("demo") == ["1.2.0", "1.3.0"]
    assert store.rollback("demo") == "1.2.0"


def test_prune_refuses_to_keep_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path, store, "1.0.0")
    with pytest.raises(ModelError, match="keep must be at least 1"):
        store.prune("demo", keep=0)
    assert store.versions("demo") == ["1.0.0"]


# --- checksums: one path (open_package) for every runtime file ----------------------------------


def test_verify_catches_truncation_and_bad_sums(tmp_path: Path) -> None:
    assert verify(make_package(tmp_path / "g")).version == "1.0.0"
    truncated = make_package(tmp_path / "t")
    truncate_model(truncated)
    with pytest.raises(ModelError, match=r"sha256 mismatch for model\.tflite"):
        verify(truncated)
    bad = make_package(tmp_path / "b")
    break_manifest_checksum(bad)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        verify(bad)


def test_verify_refuses_a_file_outside_the_package(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    (tmp_path / "x.tflite").write_bytes((pkg / "model.tflite").read_bytes())
    (pkg / "manifest.yaml").write_text(
        (pkg / "manifest.yaml").read_text().replace("file: model.tflite", "file: ../x.tflite")
    )
    with pytest.raises(ModelError, match="points outside the package"):
        verify(pkg)


def test_verify_checks_every_runtime_of_a_map(tmp_path: Path) -> None:
    """A package carrying two runtimes: a damaged second file is caught, not only the first."""
    pkg = make_package(tmp_path)
    (pkg / "model.onnx").write_bytes(b"onnx weights")
    sha_t, sha_o = file_sha256(pkg / "model.tflite"), file_sha256(pkg / "model.onnx")
    text = (pkg / "manifest.yaml").read_text()
    text = text.replace("file: model.tflite", "file: {tflite: model.tflite, onnx: model.onnx}").replace(
        f"sha256: {sha_t}", f"sha256: {{tflite: {sha_t}, onnx: {sha_o}}}"
    )
    (pkg / "manifest.yaml").write_text(text)
    assert verify(pkg).name == "demo"
    (pkg / "model.onnx").write_bytes(b"onnx weights, tampered")
    with pytest.raises(ModelError, match=r"sha256 mismatch for model\.onnx"):
        verify(pkg)


# --- kill at every step: `current` always resolves to a complete package -----------------------

_STEP_CODE = {
    "install": "store.install(sys.argv[2])",
    "activate": "store.activate('demo', '2.0.0')",
    "rollback": "store.rollback('demo')",
    "prune": "store.prune('demo', keep=1)",
}
# The test's own step callback: announce the step, then wait to be killed there.
_PAUSE = """
import sys, time
from agent.model.store import ModelStore
def pause(step):
    if step == sys.argv[3]:
        print(f"paused {step}", file=sys.stderr, flush=True)
        time.sleep(3600)
store = ModelStore(sys.argv[1], on_step=pause)
"""
_KILL_POINTS = [
    ("install", "install-copied"),
    ("install", "install-synced"),
    ("install", "install-renamed"),
    ("activate", "activate-symlink"),
    ("activate", "activate-replaced"),
    ("activate", "history-written"),
    ("rollback", "activate-symlink"),
    ("rollback", "activate-replaced"),
    ("rollback", "history-written"),
    ("prune", "prune-renamed"),
]


def _run_until_paused(op: str, step: str, store: Path, pkg: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSE + _STEP_CODE[op], str(store), str(pkg), step],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.strip() == f"paused {step}", line + proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize(("op", "step"), _KILL_POINTS)
def test_kill_at_each_step_leaves_a_complete_current(tmp_path: Path, op: str, step: str) -> None:
    store = ModelStore(tmp_path / "store")
    installed(tmp_path / "a", store, "1.0.0")
    new = make_package(tmp_path / "b", version="2.0.0")
    if op != "install":
        store.install(new)
    if op in ("rollback", "prune"):
        store.activate("demo", "2.0.0")

    _run_until_paused(op, step, store.root, new)

    assert store.current("demo") in ("1.0.0", "2.0.0")
    assert is_complete(store.root / "demo" / "current")
    # The store stays usable: finishing the interrupted work succeeds and cleans up after it.
    store.install(new)
    store.activate("demo", "2.0.0")
    if op != "prune":
        assert store.rollback("demo") == "1.0.0"
    assert not [p.name for p in (store.root / "demo").iterdir() if p.name.startswith(".")]


def test_the_store_never_reads_a_fault_injection_variable() -> None:
    """Shipped code takes an ``on_step`` callback; no environment variable can make it pause."""
    sources = [p for p in (REPO / "agent").rglob("*.py")]
    assert not [p for p in sources if "MODELSTORE_PAUSE" in p.read_text(encoding="utf-8")]
