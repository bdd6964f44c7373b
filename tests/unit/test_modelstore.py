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

from agent import modelstore as ms
from agent.errors import ModelError
from tests.support.paths import REPO
from tests.unit.deploy.packages import break_manifest_checksum, make_package, make_tarball, truncate_model


def installed(tmp_path: Path, store: Path, *versions: str) -> None:
    for v in versions:
        ms.install_package(make_package(tmp_path / "src", version=v), store)
        ms.activate(store, "demo", v)


def test_install_and_activate_points_current_at_the_package(tmp_path: Path) -> None:
    store = tmp_path / "store"
    dest = ms.install_package(make_package(tmp_path), store)
    assert dest == store / "demo" / "1.0.0"
    assert ms.current_version(store, "demo") is None
    ms.activate(store, "demo", "1.0.0")
    assert os.readlink(store / "demo" / "current") == "1.0.0"
    assert ms.is_complete(store / "demo" / "current")
    assert ms.history(store, "demo") == ["1.0.0"]


def test_install_from_tarball(tmp_path: Path) -> None:
    store = tmp_path / "store"
    dest = ms.install_package(make_tarball(make_package(tmp_path, version="2.0.0")), store)
    assert dest.name == "2.0.0"
    assert (dest / "golden" / "expected.json").is_file()
    assert not [p for p in (store / "demo").iterdir() if p.name.startswith(".")]


def test_reinstalling_same_content_is_a_no_op(tmp_path: Path) -> None:
    store = tmp_path / "store"
    pkg = make_package(tmp_path)
    assert ms.install_package(pkg, store) == ms.install_package(pkg, store)


def test_same_version_with_other_content_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ms.install_package(make_package(tmp_path / "a"), store)
    other = make_package(tmp_path / "b", payload=b"different weights")
    with pytest.raises(ModelError, match="already installed with other content"):
        ms.install_package(other, store)


@pytest.mark.parametrize("bad", ["../evil", "current", ".hidden", ""])
def test_unsafe_version_names_are_refused(tmp_path: Path, bad: str) -> None:
    pkg = make_package(tmp_path)
    text = (pkg / "manifest.yaml").read_text().replace("version: 1.0.0", f"version: '{bad}'")
    (pkg / "manifest.yaml").write_text(text)
    with pytest.raises(ModelError, match="cannot be used as a directory name"):
        ms.install_package(pkg, tmp_path / "store")


def test_tarball_with_path_escape_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ModelError, match="refusing archive member"):
        ms.install_package(bad, tmp_path / "store")
    assert not (tmp_path / "escape.txt").exists()


def test_not_a_package_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="not a package directory or tar archive"):
        ms.install_package(junk, tmp_path / "store")
    with pytest.raises(ModelError, match=r"no readable manifest\.yaml"):
        ms.install_package(tmp_path / "store", tmp_path / "store2")


def test_activate_unknown_version_is_refused_and_current_unchanged(tmp_path: Path) -> None:
    store = tmp_path / "store"
    installed(tmp_path, store, "1.0.0")
    with pytest.raises(ModelError, match="not installed"):
        ms.activate(store, "demo", "9.9.9")
    assert ms.current_version(store, "demo") == "1.0.0"


def test_rollback_goes_back_one_version_at_a_time(tmp_path: Path) -> None:
    store = tmp_path / "store"
    installed(tmp_path, store, "1.0.0", "1.1.0", "1.2.0")
    assert ms.rollback(store, "demo") == "1.1.0"
    assert ms.rollback(store, "demo") == "1.0.0"
    with pytest.raises(ModelError, match="no earlier version"):
        ms.rollback(store, "demo")
    assert ms.current_version(store, "demo") == "1.0.0"


def test_rollback_after_a_switch_the_history_missed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    installed(tmp_path, store, "1.0.0")
    ms.install_package(make_package(tmp_path / "src2", version="2.0.0"), store)
    os.replace(_symlink(store / "demo", "2.0.0"), store / "demo" / "current")  # switched, history not written
    assert ms.rollback(store, "demo") == "1.0.0"


def test_an_absolute_current_link_reads_as_its_version(tmp_path: Path) -> None:
    store = tmp_path / "store"
    installed(tmp_path, store, "1.0.0", "2.0.0")
    link = store / "demo" / "current"
    os.replace(_symlink(store / "demo", str(store / "demo" / "1.0.0")), link)  # as the agent's rollback does
    assert ms.current_version(store, "demo") == "1.0.0"
    with pytest.raises(ModelError, match="no earlier version"):
        ms.rollback(store, "demo")
    ms.install_package(make_package(tmp_path / "v3", version="3.0.0"), store)
    ms.activate(store, "demo", "3.0.0")
    assert ms.rollback(store, "demo") == "1.0.0"


def _symlink(model_dir: Path, target: str) -> Path:
    tmp = model_dir / "hand.tmp"
    tmp.symlink_to(target)
    return tmp


def test_prune_keeps_current_and_recent_versions(tmp_path: Path) -> None:
    store = tmp_path / "store"
    installed(tmp_path, store, "1.0.0", "1.1.0", "1.2.0", "1.3.0")
    ms.install_package(make_package(tmp_path / "x", version="0.9.0"), store)  # never activated
    removed = ms.prune(store, "demo", keep=2)
    assert sorted(removed) == ["0.9.0", "1.0.0", "1.1.0"]
    assert sorted(p.name for p in (store / "demo").iterdir() if p.is_dir() and not p.is_symlink()) == [
        "1.2.0",
        "1.3.0",
    ]
    assert ms.rollback(store, "demo") == "1.2.0"


def test_verify_checksums_catches_truncation_and_bad_sums(tmp_path: Path) -> None:
    good = make_package(tmp_path / "g")
    ms.verify_checksums(good)
    truncated = make_package(tmp_path / "t")
    truncate_model(truncated)
    with pytest.raises(ModelError, match=r"sha256 mismatch for model\.tflite"):
        ms.verify_checksums(truncated)
    bad = make_package(tmp_path / "b")
    break_manifest_checksum(bad)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        ms.verify_checksums(bad)


def test_verify_checksums_refuses_a_file_outside_the_package(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    (pkg / "manifest.yaml").write_text(
        (pkg / "manifest.yaml").read_text().replace("file: model.tflite", "file: ../x")
    )
    with pytest.raises(ModelError, match="points outside the package"):
        ms.verify_checksums(pkg)


def test_verify_checksums_accepts_a_map_per_runtime(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    text = (pkg / "manifest.yaml").read_text()
    sha = ms.file_sha256(pkg / "model.tflite")
    text = text.replace("file: model.tflite", "file: {tflite: model.tflite}").replace(
        f"sha256: {sha}", f"sha256: {{tflite: {sha}}}"
    )
    (pkg / "manifest.yaml").write_text(text)
    ms.verify_checksums(pkg)


# --- kill at every step: `current` always resolves to a complete package -----------------------

_STEP_CODE = {
    "install": "ms.install_package(sys.argv[2], sys.argv[1])",
    "activate": "ms.activate(sys.argv[1], 'demo', '2.0.0')",
    "rollback": "ms.rollback(sys.argv[1], 'demo')",
    "prune": "ms.prune(sys.argv[1], 'demo', keep=1)",
}
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
    code = f"import sys\nfrom agent import modelstore as ms\n{_STEP_CODE[op]}\n"
    env = {**os.environ, ms.PAUSE_ENV: step, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(store), str(pkg)], env=env, stderr=subprocess.PIPE, text=True
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
    store = tmp_path / "store"
    installed(tmp_path / "a", store, "1.0.0")
    new = make_package(tmp_path / "b", version="2.0.0")
    if op != "install":
        ms.install_package(new, store)
    if op in ("rollback", "prune"):
        ms.activate(store, "demo", "2.0.0")

    _run_until_paused(op, step, store, new)

    current = ms.current_version(store, "demo")
    assert current in ("1.0.0", "2.0.0")
    assert ms.is_complete(store / "demo" / "current")
    # The store stays usable: finishing the interrupted work succeeds.
    ms.install_package(new, store)
    ms.activate(store, "demo", "2.0.0")
    if op != "prune":
        assert ms.rollback(store, "demo") == "1.0.0"
    assert not [p.name for p in (store / "demo").iterdir() if p.name.startswith((".incoming", ".trash"))]
