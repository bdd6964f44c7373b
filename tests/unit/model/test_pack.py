"""pack -> validate round trip, repacking, tarballs, and tar safety."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.model.archive import unpack_package
from agent.model.pack import make_tarball, manifest_for_repack, pack
from agent.model.signing import verify_checksums
from agent.model.validate import validate_package
from tests.unit.model.packages import FIXTURES, golden_dir, manifest_for_pack


def test_pack_then_validate_round_trip_with_two_runtimes(tmp_path: Path) -> None:
    golden = golden_dir(tmp_path / "golden")
    models = [FIXTURES / "cls_u8.tflite", FIXTURES / "cls_nhwc.onnx"]
    result = pack(manifest_for_pack("cls_u8.tflite"), models, tmp_path / "pkg", golden=golden, tar=True)
    assert result.runtimes == ("tflite", "onnx") and result.golden_images == 4
    expected = json.loads((tmp_path / "pkg" / "golden" / "expected.json").read_text())
    assert expected["tolerance"] == 0.1
    assert set(expected["images"]) == {"noise0.png", "noise1.png", "noise2.png", "white.png"}
    assert set(expected["images"]["white.png"]["scores"]) == {"tflite", "onnx"}
    assert verify_checksums(tmp_path / "pkg") == 8
    report = validate_package(tmp_path / "pkg", runs=5)
    assert report.ok, report.checks
    assert set(report.latency_ms) == {"tflite", "onnx"}
    assert result.tarball is not None and result.tarball.name == "pkg.tar.gz"
    root = unpack_package(result.tarball, tmp_path / "unpacked")
    assert root == tmp_path / "unpacked" / "pkg" and validate_package(root, runs=3).ok


def test_two_files_for_one_runtime_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    doc = manifest_for_pack("cls_u8.tflite")
    with pytest.raises(ModelError, match="two tflite model files"):
        pack(doc, [FIXTURES / "cls_u8.tflite", FIXTURES / "cls_i8.tflite"], tmp_path / "pkg")
    assert list(tmp_path.iterdir()) == []


def test_pack_refuses_a_manifest_that_does_not_fit_and_leaves_nothing(tmp_path: Path) -> None:
    doc = manifest_for_pack("cls_u8.tflite", labels=["ok", "scratch"])
    with pytest.raises(ModelError, match="3 output classes but the manifest lists 2 labels"):
        pack(doc, [FIXTURES / "cls_u8.tflite"], tmp_path / "pkg")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match=r"manifest.yaml:\d+: input.color: must be one of"):
        pack(
            manifest_for_pack("cls_u8.tflite", input={"width": 32, "height": 32, "color": "CMYK"}),
            [FIXTURES / "cls_u8.tflite"],
            tmp_path / "pkg",
        )


def test_pack_never_overwrites_an_existing_package(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="already exists"):
        pack(manifest_for_pack("cls_u8.tflite"), [FIXTURES / "cls_u8.tflite"], tmp_path / "pkg")
    assert (tmp_path / "pkg" / "keep.txt").read_text() == "mine"


def test_repack_from_an_existing_manifest_with_a_labels_file(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("ok\nscratch\ndent\n")
    doc = manifest_for_pack("cls_i8.tflite")
    del doc["labels"]
    first = pack(
        doc,
        [FIXTURES / "cls_i8.tflite"],
        tmp_path / "v1",
        labels_file=labels,
        golden=golden_dir(tmp_path / "g"),
    )
    again, models, labels_file, golden = manifest_for_repack(first.root / "manifest.yaml")
    again["version"] = "1.0.1"
    second = pack(again, models, tmp_path / "v2", labels_file=labels_file, golden=golden)
    assert (second.root / "labels.txt").read_text() == "ok\nscratch\ndent\n"
    assert validate_package(second.root, runs=3).ok


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        ok = tarfile.TarInfo("pkg/manifest.yaml")
        ok.size = 2
        archive.addfile(ok, io.BytesIO(b"{}"))
        member.size = len(data) if member.isfile() else 0
        archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "link", "message"),
    [
        ("/etc/cron.d/x", tarfile.REGTYPE, "", "absolute path"),
        ("pkg/../../x", tarfile.REGTYPE, "", r"'\.\.'"),
        ("pkg/model.tflite", tarfile.SYMTYPE, "/etc/passwd", "links and special files"),
        ("pkg/model.tflite", tarfile.SYMTYPE, "../../outside", "links and special files"),
        ("pkg/hard", tarfile.LNKTYPE, "pkg/manifest.yaml", "links and special files"),
        ("pkg/dev", tarfile.CHRTYPE, "", "links and special files"),
    ],
)
def test_unsafe_tar_members_are_refused_before_writing(
    tmp_path: Path, name: str, kind: bytes, link: str, message: str
) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    archive = _tar_with(tmp_path, member, b"x" if kind == tarfile.REGTYPE else b"")
    with pytest.raises(ModelError, match=message):
        unpack_package(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_tarball_and_missing_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ModelError, match="not a readable package archive"):
        unpack_package(bad, tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme").write_text("x")
    with pytest.raises(ModelError, match=r"exactly one manifest\.yaml, found 0"):
        unpack_package(make_tarball(tmp_path / "empty"), tmp_path / "o2")
