"""CHECKSUMS and ed25519 signatures: good, bad, missing; keys as PEM or hex; refusal at load_model."""

from __future__ import annotations

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


def test_public_key_as_hex_and_raw_signature_are_accepted(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    private, public = keys
    sign_package(package, private)
    sig = bytes.fromhex((package / "signature").read_text())
    (package / "signature").write_bytes(sig)  # raw 64 bytes
    from agent.model.signing import load_public_key

    raw = load_public_key(public).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    hex_key = tmp_path / "key.hex"
    hex_key.write_text(raw.hex() + "\n")
    assert verify_signature(package, [str(hex_key)]) == str(hex_key)


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
