"""`model import`: what an export says is read, what it does not is guessed and shown, bad input refused."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.model.importers import ImportOptions, find_model, plan_import
from agent.model.importers.base import Labels
from agent.model.importers.embedded import class_names, tflite_metadata
from agent.model.importers.labels import parse_labels, read_label_file
from tests.support.agentproc import run_agent
from tests.support.paths import REPO

INTEROP = REPO / "tests" / "fixtures" / "interop"


def plan(path: Path, tmp_path: Path, **opts: object):  # type: ignore[no-untyped-def]
    return plan_import(path, ImportOptions(**opts), tmp_path)  # type: ignore[arg-type]


def test_ultralytics_onnx_metadata_becomes_the_manifest(tmp_path: Path) -> None:
    p = plan(INTEROP / "ultralytics_det.onnx", tmp_path)
    assert p.doc["labels"] == ["scratch", "dent", "chip"]
    assert p.doc["input"] == {
        "width": 160, "height": 160, "layout": "NCHW", "color": "RGB", "scale": 1 / 255, "mean": [0.0],
        "std": [1.0], "resize": "letterbox", "letterbox_fill": 114,
    }  # fmt: skip
    assert p.doc["output"] == {
        "format": "yolo",
        "box_units": "pixels",
        "box_format": "xywh",
        "activation": "none",
    }
    assert any("Ultralytics 8.3.40 detect" in n for n in p.notes.inferred)
    assert any("version 1.0.0" in g for g in p.notes.guessed)


def test_ultralytics_tflite_boxes_are_normalised_and_end2end_is_recognised(tmp_path: Path) -> None:
    raw = plan(INTEROP / "ultralytics_det_float32.tflite", tmp_path)
    assert raw.doc["output"]["box_units"] == "normalized" and raw.doc["input"]["layout"] == "NHWC"
    e2e = plan(INTEROP / "ultralytics_e2e_float32.tflite", tmp_path)
    assert e2e.doc["output"] == {"format": "end2end", "box_units": "normalized", "box_format": "xyxy"}


def test_older_ultralytics_tflite_metadata_as_a_python_repr_is_read(tmp_path: Path) -> None:
    """Before 8.1 the dictionary was str()-ed into temp_meta.txt, packed by tflite_support."""
    data = (INTEROP / "ultralytics_det_float32.tflite").read_bytes()
    flat = data[: data.index(b"PK\x03\x04")]  # the flatbuffer without the appended zip
    buffer = io.BytesIO(flat)
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr(
            "temp_meta.txt", str({"task": "detect", "imgsz": [160, 160], "stride": 32, "names": {0: "a"}})
        )
    path = tmp_path / "old.tflite"
    path.write_bytes(buffer.getvalue())
    meta = tflite_metadata(path)
    assert class_names(meta) == ("a",) and meta["imgsz"] == [160, 160]
    assert tflite_metadata(INTEROP / "teachable" / "model_unquant.tflite") == {}


def test_teachable_machine_labels_and_scaling(tmp_path: Path) -> None:
    p = plan(INTEROP / "teachable", tmp_path)
    assert p.doc["labels"] == ["Good", "Scratch"]
    assert p.doc["input"]["scale"] == pytest.approx(1 / 127.5) and p.doc["input"]["mean"] == [1.0]
    assert p.doc["output"] == {"format": "scores", "activation": "none"}  # its softmax is inside


def test_edge_impulse_input_range_comes_from_the_int8_quantization(tmp_path: Path) -> None:
    p = plan(INTEROP / "edge_impulse", tmp_path)
    assert p.doc["input"]["scale"] == pytest.approx(1 / 255, rel=1e-6)
    assert p.doc["input"]["mean"] == [pytest.approx(0.0, abs=1e-6)]
    assert any("quantization" in n for n in p.notes.inferred)


def test_torch_onnx_guesses_are_shown_and_options_settle_them(tmp_path: Path) -> None:
    labels = Labels(("good", "scratch"), False, "--labels")
    p = plan(INTEROP / "torch" / "classifier.onnx", tmp_path, labels=labels)
    assert p.doc["output"]["activation"] == "softmax"  # logits, found by running the model
    assert any("ImageNet" in g for g in p.notes.guessed)
    given = plan(
        INTEROP / "torch" / "classifier.onnx", tmp_path, labels=labels, scale=1.0, mean=(0.5,), std=(0.5,)
    )
    assert given.doc["input"]["scale"] == 1.0 and given.doc["input"]["mean"] == [0.5]
    assert not any("ImageNet" in g for g in given.notes.guessed)
    assert any("given on the command line" in n for n in given.notes.inferred)


def test_an_export_without_metadata_or_labels_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"classifier\.onnx carries no class names .* no --labels was given"):
        plan(INTEROP / "torch" / "classifier.onnx", tmp_path)


def test_a_label_file_whose_count_differs_from_the_output_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "tm"
    shutil.copytree(INTEROP / "teachable", export)
    (export / "labels.txt").write_text("0 Good\n1 Scratch\n2 Dent\n")
    with pytest.raises(
        ModelError, match=r"labels.txt beside the model names 3 label\(s\) but the model outputs 2"
    ):
        plan(export, tmp_path)


def test_an_indexed_label_file_out_of_order_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("1 Scratch\n0 Good\n")
    with pytest.raises(ModelError, match="count 0, 1, 2"):
        read_label_file(path)
    path.write_text("good\nscratch\n")
    assert read_label_file(path) == (("good", "scratch"), False)
    assert parse_labels("a, b,c").names == ("a", "b", "c")
    with pytest.raises(ModelError, match="no such file"):
        parse_labels(str(tmp_path / "missing.txt"))


def test_an_unsupported_ultralytics_task_is_refused(tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(INTEROP / "ultralytics_det.onnx"))
    for prop in model.metadata_props:
        if prop.key == "task":
            prop.value = "segment"
    path = tmp_path / "seg.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="task 'segment' is not supported"):
        plan(path, tmp_path)


def test_a_folder_with_several_models_asks_which(tmp_path: Path) -> None:
    for name in ("a.onnx", "b.tflite", "labels.txt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ModelError, match=r"2 model files \(a.onnx, b.tflite\)"):
        find_model(tmp_path)


def test_cli_prints_the_error_on_one_line_and_exits_3(tmp_path: Path) -> None:
    done = run_agent(
        ["model", "import", str(INTEROP / "torch" / "classifier.onnx"), "--out", str(tmp_path / "p")]
    )
    assert done.returncode == 3
    assert "no --labels was given" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
