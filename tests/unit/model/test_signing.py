"""CHECKSUMS and ed25519 signatures: good, bad, missing; keys as PEM or hex; refusal at load_model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.schema import ModelConfig
from agent.errors import ModelError, RuntimeMissingError
from agent.model.loaded import load_model
from agent.model.signing import (
    generate_keypair,
    sign_package,
    verify_checksums,
    verify_signature,
    write_checksums,
)
from tests.unit.model.packages import write_package


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "keys").mkdir()
    return generate_keypair(tmp_path / "keys" / "release")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_package(tmp_path / "pkg", "cls_u8.tflite")


def test_signed_package_verifies_with_the_trusted_key(package: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    sign_package(package, private)
    assert verify_signature(package, [str(public)]) == str(public)
    assert (package / "CHECKSUMS").read_text().splitlines()[0].endswith("  cls_u8.tflite")


def test_legacy_raw_ed25519_signature_and_hex_key_still_verify_with_a_warning(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """Packages signed by the previous release (a bare 64-byte ``signature``) load for one more release."""
    from cryptography.hazmat.primitives import serialization
    from structlog.testing import capture_logs

    from agent.model.signing import load_private_key, load_public_key

    private, public = keys
    write_checksums(package)
    (package / "signature").write_bytes(load_private_key(private).sign((package / "CHECKSUMS").read_bytes()))
    raw = load_public_key(public).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    hex_key = tmp_path / "key.hex"
    hex_key.write_text(raw.hex() + "\n")
    with capture_logs() as logs:
        assert verify_signature(package, [str(hex_key)]) == str(hex_key)
    assert [e["event"] for e in logs] == ["legacy_signature_format"]


def test_unsigned_package_is_refused(package: Path, keys: tuple[Path, Path]) -> None:
    write_checksums(package)
    with pytest.raises(ModelError, match="is not signed"):
        verify_signature(package, [str(keys[1])])


def test_signature_by_another_key_is_refused(package: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other_private, _ = generate_keypair(tmp_path / "other" / "k")
    sign_package(package, other_private)
    with pytest.raises(ModelError, match="not signed by any trusted key"):
        verify_signature(package, [str(keys[1])])


def test_tampered_file_after_signing_is_refused(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    manifest = package / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("budget_ms: 2000", "budget_ms: 3000"))
    with pytest.raises(ModelError, match=r"manifest\.yaml does not match its CHECKSUMS entry"):
        verify_signature(package, [str(keys[1])])


def test_edited_checksums_break_the_signature(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / "extra.onnx").write_bytes(b"x")
    sums = package / "CHECKSUMS"
    sums.write_text(
        sums.read_text() + "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  extra.onnx\n"
    )
    with pytest.raises(ModelError, match="not signed by any trusted key"):
        verify_signature(package, [str(keys[1])])


def test_checksums_must_list_exactly_the_package_files(package: Path) -> None:
    write_checksums(package)
    assert verify_checksums(package) == 2
    (package / "sneaky.tflite").write_bytes(b"model")
    with pytest.raises(ModelError, match=r"not covered by CHECKSUMS: sneaky.tflite"):
        verify_checksums(package)
    (package / "sneaky.tflite").unlink()
    (package / "cls_u8.tflite").unlink()
    with pytest.raises(ModelError, match=r"lists cls_u8\.tflite, which is missing"):
        verify_checksums(package)


def test_checksums_entries_cannot_leave_the_package(package: Path) -> None:
    (package / "CHECKSUMS").write_text("ab" * 32 + "  ../../etc/passwd\n")
    with pytest.raises(ModelError, match="outside the package"):
        verify_checksums(package)


def test_bad_key_files_are_clear_errors(package: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    sign_target = tmp_path / "k"
    private, _ = generate_keypair(sign_target)
    sign_package(package, private)
    with pytest.raises(ModelError, match="is not an ed25519 public key"):
        verify_signature(package, [str(bad)])
    with pytest.raises(ModelError, match="never overwritten"):
        generate_keypair(sign_target)


def test_missing_cryptography_names_the_extra(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
    with pytest.raises(RuntimeMissingError, match=r"\[sign\]"):
        verify_signature(package, ["k.pub"])


def test_load_model_refuses_unsigned_and_wrongly_signed_when_required(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = ModelConfig(path=str(package), require_signature=True, trusted_keys=[str(keys[1])], warmup_runs=0)
    with pytest.raises(ModelError, match="is not signed"):
        load_model(str(package), cfg)
    (tmp_path / "o").mkdir()
    sign_package(package, generate_keypair(tmp_path / "o" / "k")[0])
    with pytest.raises(ModelError, match="not signed by any trusted key"):
        load_model(str(package), cfg)
    sign_package(package, keys[0])
    load_model(str(package), cfg).close()


# --- minisign: signed with the real `minisign` tool, verified in-process -------------------------

MINISIGN = shutil.which("minisign")
needs_minisign = pytest.mark.skipif(MINISIGN is None, reason="the minisign tool is not installed (apt)")


def minisign_keys(where: Path) -> tuple[Path, Path]:
    where.mkdir(parents=True)
    pub, sec = where / "minisign.pub", where / "minisign.key"
    subprocess.run(
        [str(MINISIGN), "-G", "-W", "-p", str(pub), "-s", str(sec)], check=True, capture_output=True
    )
    return pub, sec


def minisign_sign(package: Path, sec: Path, comment: str, target: Path | None = None) -> None:
    target = target or package / "CHECKSUMS"
    subprocess.run(
        [str(MINISIGN), "-S", "-s", str(sec), "-m", str(target), "-x", str(package / "CHECKSUMS.minisig"),
         "-t", comment],
        check=True, capture_output=True,
    )  # fmt: skip


@needs_minisign
def test_a_package_signed_with_the_minisign_tool_verifies(package: Path, tmp_path: Path) -> None:
    pub, sec = minisign_keys(tmp_path / "team")
    write_checksums(package)
    minisign_sign(package, sec, "name=cls-u8 version=1.0.0")  # the manifest of write_package
    assert verify_signature(package, [str(pub)]) == str(pub)
    assert verify_checksums(package) == 2  # the .minisig beside CHECKSUMS is not a package file


@needs_minisign
def test_minisign_signature_by_an_untrusted_key_is_refused(package: Path, tmp_path: Path) -> None:
    trusted, _ = minisign_keys(tmp_path / "team")
    _, stranger = minisign_keys(tmp_path / "stranger")
    write_checksums(package)
    minisign_sign(package, stranger, "name=cls-u8 version=1.0.0")
    with pytest.raises(ModelError, match=r"not signed by any trusted key \(signed by key [0-9A-F]{16}"):
        verify_signature(package, [str(trusted)])


@needs_minisign
def test_minisign_signature_over_other_bytes_is_refused(package: Path, tmp_path: Path) -> None:
    pub, sec = minisign_keys(tmp_path / "team")
    write_checksums(package)
    other = tmp_path / "other.txt"
    other.write_text("a different release\n")
    minisign_sign(package, sec, "name=cls-u8 version=1.0.0", target=other)
    with pytest.raises(ModelError, match="not signed by any trusted key"):
        verify_signature(package, [str(pub)])


@needs_minisign
def test_the_trusted_comment_must_name_this_package(package: Path, tmp_path: Path) -> None:
    pub, sec = minisign_keys(tmp_path / "team")
    write_checksums(package)
    minisign_sign(package, sec, "name=cls-u8 version=0.9")
    with pytest.raises(
        ModelError, match=r"not name this package \(cls-u8 1.0.0\): sign with -t 'name=cls-u8 version=1.0.0'"
    ):
        verify_signature(package, [str(pub)])
    sig = package / "CHECKSUMS.minisig"
    lines = sig.read_text().splitlines()
    minisign_sign(package, sec, "name=cls-u8 version=1.0.0")
    good = sig.read_text().splitlines()
    sig.write_text("\n".join([*good[:2], lines[2], good[3]]) + "\n")  # swap in another trusted comment
    with pytest.raises(ModelError, match="not signed by any trusted key"):
        verify_signature(package, [str(pub)])


@needs_minisign
def test_model_sign_writes_what_the_minisign_tool_accepts(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    from agent.model import minisign
    from agent.model.signing import load_public_key

    private, public = keys
    sign_package(package, private)
    raw = load_public_key(public).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    mini_pub = tmp_path / "release.minisign.pub"
    mini_pub.write_text(minisign.public_key_text(minisign.PublicKey(minisign.derived_key_id(raw), raw)))
    done = subprocess.run(
        [str(MINISIGN), "-V", "-p", str(mini_pub), "-m", str(package / "CHECKSUMS")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "name:cls-u8\tversion:1.0.0" in done.stdout
    assert verify_signature(package, [str(mini_pub)]) == str(mini_pub)
