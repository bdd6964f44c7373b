"""Detection postprocessing: NMS, box mapping through every resize mode, YOLO and SSD tensor layouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.errors import ModelError
from agent.model.manifest import InputSpec, Manifest
from agent.model.postprocess.detection import (
    EndToEndPostprocessor,
    SsdPostprocessor,
    YoloPostprocessor,
    choose_format,
    class_aware_nms,
    map_boxes,
    nms,
    ssd_roles,
)
from agent.model.preprocess import Preprocessor, Transform
from agent.runtimes.base import TensorSpec
from tests.unit.model.postprocess.manifests import manifest as make_manifest

LABELS = ("scratch", "dent")


def manifest(**overrides: Any) -> Manifest:
    return make_manifest("detection", LABELS, defect_labels=list(LABELS), **overrides)


IDENTITY = Transform(64, 64, 1.0, 1.0, 0.0, 0.0)


def test_nms_keeps_the_best_of_overlapping_boxes_and_distant_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.1], np.float32)
    assert nms(boxes, scores, 0.5, 10).tolist() == [1, 2]
    assert nms(boxes, scores, 0.5, 1).tolist() == [1]
    assert nms(boxes, scores, 0.99, 10).tolist() == [1, 0, 2, 3]


def test_class_aware_nms_never_suppresses_another_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert class_aware_nms(boxes, scores, np.array([0, 1, 0]), 0.5, 10).tolist() == [0, 1]
    assert class_aware_nms(np.zeros((0, 4), np.float32), scores[:0], np.zeros(0, int), 0.5, 10).size == 0


def test_nms_is_fast_enough_on_thousands_of_candidates() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 600, (4000, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 30], axis=1)
    kept = class_aware_nms(
        boxes, rng.uniform(0, 1, 4000).astype(np.float32), rng.integers(0, 3, 4000), 0.45, 100
    )
    assert 0 < kept.size <= 100


@pytest.mark.parametrize(
    ("resize", "frame", "box_in_input", "expected"),
    [
        # stretch 128x64 -> 64x64: x halves, y stays
        ("stretch", (64, 128), [16, 16, 32, 48], [0.25, 0.25, 0.5, 0.75]),
        # letterbox 128x64 -> 64x32 image centred vertically (16 px bars above and below)
        ("letterbox", (64, 128), [16, 16, 48, 48], [0.25, 0.0, 0.75, 1.0]),
        ("letterbox", (64, 128), [0, 24, 32, 40], [0.0, 0.25, 0.5, 0.75]),
        # centre crop 128x64 -> the middle 64x64 of the frame
        ("center_crop", (64, 128), [0, 0, 64, 64], [0.25, 0.0, 0.75, 1.0]),
        ("center_crop", (64, 128), [32, 16, 48, 48], [0.5, 0.25, 0.625, 0.75]),
    ],
)
def test_boxes_map_back_through_each_resize_mode(
    resize: str, frame: tuple[int, int], box_in_input: list[float], expected: list[float]
) -> None:
    spec = InputSpec(width=64, height=64, resize=resize)  # type: ignore[arg-type]
    pre = Preprocessor(spec, TensorSpec("x", (1, 64, 64, 3), np.dtype(np.uint8)))
    _, transform = pre(np.zeros((*frame, 3), np.uint8))
    mapped = map_boxes(np.array([box_in_input], np.float32), transform)
    assert mapped[0].tolist() == pytest.approx(expected, abs=1e-6)


def yolo(rows: np.ndarray, channels_first: bool = True, **out: Any) -> Any:
    raw = rows.T[np.newaxis] if channels_first else rows[np.newaxis]
    spec = TensorSpec("out", tuple(raw.shape), np.dtype(np.float32))
    post = choose_format(manifest(output={"format": "auto", **out}), LABELS, (spec,), frozenset(LABELS))
    assert isinstance(post, YoloPostprocessor)
    return post([raw.astype(np.float32)], IDENTITY)


ROWS = np.array(
    [[32, 32, 16, 16, 0.9, 0.1], [33, 33, 16, 16, 0.8, 0.0], [10, 10, 4, 4, 0.0, 0.3]], np.float32
)


@pytest.mark.parametrize("channels_first", [True, False])
def test_yolo_reads_both_tensor_orientations(channels_first: bool) -> None:
    result = yolo(ROWS, channels_first)
    assert [(d.label, round(d.score, 3)) for d in result.detections] == [("scratch", 0.9), ("dent", 0.3)]
    assert result.detections[0].box == pytest.approx((0.375, 0.375, 0.625, 0.625))
    assert result.scores == pytest.approx({"scratch": 0.9, "dent": 0.3})


def test_yolo_objectness_multiplies_class_scores() -> None:
    rows = np.insert(ROWS, 4, [0.5, 1.0, 1.0], axis=1)
    result = yolo(rows, objectness=True)
    assert [(d.label, round(d.score, 3)) for d in result.detections] == [("scratch", 0.8), ("dent", 0.3)]


def test_yolo_sigmoid_logits_and_xyxy_boxes() -> None:
    rows = np.array([[8, 8, 24, 24, 3.0, -3.0]], np.float32)
    result = yolo(rows, activation="sigmoid", box_format="xyxy")
    assert result.detections[0].box == pytest.approx((0.125, 0.125, 0.375, 0.375))
    assert result.detections[0].score == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)


def test_nothing_found_reports_ok_with_one_minus_the_best_raw_score() -> None:
    rows = ROWS.copy()
    rows[:, 4:] = [[0.1, 0.05], [0.2, 0.0], [0.0, 0.1]]
    result = yolo(rows)
    assert result.detections == () and result.label == "ok" and not result.is_defect
    assert result.score == pytest.approx(0.8)
    assert result.scores == pytest.approx({"scratch": 0.2, "dent": 0.1})  # raw, below the floor


def test_thresholds_decide_is_defect_per_label() -> None:
    rows = ROWS[:1].copy()
    spec = TensorSpec("out", (1, 6, 1), np.dtype(np.float32))
    m = manifest(thresholds={"per_label": {"scratch": 0.95}})
    post = choose_format(m, LABELS, (spec,), frozenset(LABELS))
    result = post([rows.T[np.newaxis]], IDENTITY)
    assert result.label == "scratch" and not result.is_defect


def test_yolo_label_count_mismatch_is_refused_at_load() -> None:
    spec = TensorSpec("out", (1, 7, 100), np.dtype(np.float32))
    with pytest.raises(ModelError, match="no axis of size 6"):
        choose_format(manifest(), LABELS, (spec,), frozenset(LABELS))


def test_yolo_nan_output_is_a_model_error() -> None:
    rows = ROWS.copy()
    rows[0, 0] = np.nan
    with pytest.raises(ModelError, match="NaN or Inf"):
        yolo(rows)


def test_yolo_int8_output_is_dequantized() -> None:
    rows = np.array([[32, 32, 16, 16, 1.0, 0]], np.float32)
    raw = np.rint(rows.T[np.newaxis] / 0.5).astype(np.int8)  # scale 0.5, zero point 0
    spec = TensorSpec("out", raw.shape, np.dtype(np.int8), scale=0.5, zero_point=0)
    post = choose_format(manifest(), LABELS, (spec,), frozenset(LABELS))
    result = post([raw], IDENTITY)
    assert result.detections[0].score == 1.0 and result.detections[0].box == pytest.approx(
        (0.375, 0.375, 0.625, 0.625)
    )


def _ssd_outputs(count: int) -> dict[str, np.ndarray]:
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, :3] = [[0.2, 0.2, 0.4, 0.4], [0.6, 0.5, 0.8, 0.9], [0.0, 0.0, 0.1, 0.1]]
    classes = np.full((1, 10), np.nan, np.float32)  # garbage past `count` must be ignored
    scores = np.full((1, 10), np.nan, np.float32)
    classes[0, :3], scores[0, :3] = [0, 1, 0], [0.9, 0.8, 0.1]
    return {"boxes": boxes, "classes": classes, "scores": scores, "count": np.array([count], np.float32)}


def test_ssd_tensors_are_found_in_any_order_by_shape_and_name() -> None:
    f32 = np.dtype(np.float32)
    outputs = (
        TensorSpec("PartitionedCall:1", (1, 10), f32),
        TensorSpec("PartitionedCall:3", (1,), f32),
        TensorSpec("PartitionedCall:0", (1, 10, 4), f32),
        TensorSpec("PartitionedCall:2", (1, 10), f32),
    )
    assert ssd_roles(outputs) == (2, 0, 3, 1)
    named = (
        TensorSpec("detection_scores", (1, 10), f32),
        TensorSpec("detection_boxes", (1, 10, 4), f32),
        TensorSpec("num_detections", (1,), f32),
        TensorSpec("detection_classes", (1, 10), f32),
    )
    assert ssd_roles(named) == (1, 3, 0, 2)


def test_ssd_result_uses_count_and_maps_yxyx_boxes() -> None:
    f32 = np.dtype(np.float32)
    order = ["scores", "boxes", "count", "classes"]
    specs = tuple(TensorSpec(f"detection_{n}", _ssd_outputs(0)[n].shape, f32) for n in order)
    post = choose_format(manifest(output={"score_floor": 0.05}), LABELS, specs, frozenset(LABELS))
    assert isinstance(post, SsdPostprocessor)
    values = _ssd_outputs(3)
    result = post([values[n] for n in order], IDENTITY)
    assert [(d.label, round(d.score, 3), tuple(round(v, 3) for v in d.box)) for d in result.detections] == [
        ("scratch", 0.9, (0.2, 0.2, 0.4, 0.4)),
        ("dent", 0.8, (0.5, 0.6, 0.9, 0.8)),
        ("scratch", 0.1, (0.0, 0.0, 0.1, 0.1)),
    ]
    empty = post([_ssd_outputs(0)[n] for n in order], IDENTITY)
    assert empty.detections == () and empty.label == "ok" and empty.score == 1.0


def test_ssd_swaps_classes_and_scores_when_the_values_say_so() -> None:
    f32 = np.dtype(np.float32)
    specs = (
        TensorSpec("a", (1, 10, 4), f32),
        TensorSpec("b", (1, 10), f32),
        TensorSpec("c", (1, 10), f32),
        TensorSpec("d", (1,), f32),
    )
    post = choose_format(manifest(), LABELS, specs, frozenset(LABELS))
    v = _ssd_outputs(3)
    result = post([v["boxes"], v["scores"], v["classes"], v["count"]], IDENTITY)  # b holds scores
    assert [d.label for d in result.detections] == ["scratch", "dent"]


def test_ssd_class_index_beyond_the_labels_is_a_model_error() -> None:
    f32 = np.dtype(np.float32)
    specs = tuple(
        TensorSpec(f"detection_{n}", _ssd_outputs(0)[n].shape, f32)
        for n in ("boxes", "classes", "scores", "count")
    )
    post = choose_format(manifest(), ("scratch",), specs, frozenset({"scratch"}))
    v = _ssd_outputs(3)
    with pytest.raises(ModelError, match="class index 1 but the manifest lists 1 labels"):
        post([v["boxes"], v["classes"], v["scores"], v["count"]], IDENTITY)


def test_unknown_output_layout_is_refused() -> None:
    f32 = np.dtype(np.float32)
    with pytest.raises(ModelError, match="use ssd"):
        choose_format(manifest(), LABELS, (TensorSpec("a", (1, 6, 3), f32),) * 2, frozenset())
    with pytest.raises(ModelError, match="cannot tell the SSD outputs apart"):
        choose_format(manifest(), LABELS, (TensorSpec("a", (1, 10), f32),) * 4, frozenset())


# --- box units (Ultralytics TFLite normalises, ONNX keeps pixels) and end-to-end heads ---------


def test_normalized_yolo_boxes_are_scaled_to_the_input_before_mapping() -> None:
    rows = ROWS.copy()
    rows[:, :4] /= 64.0  # what Ultralytics' TFLite export emits for a 64x64 input
    result = yolo(rows, box_units="normalized")
    assert result.detections[0].box == pytest.approx((0.375, 0.375, 0.625, 0.625))


def test_box_units_auto_is_normalized_for_tflite_and_pixels_for_onnx() -> None:
    m = manifest()
    assert m.output.box_units == "auto"
    assert m.for_runtime("tflite").output.box_units == "normalized"
    assert m.for_runtime("onnx").output.box_units == "pixels"
    explicit = manifest(output={"box_units": "pixels"})
    assert explicit.for_runtime("tflite").output.box_units == "pixels"


THREE = ("scratch", "dent", "chip")


def e2e(rows: np.ndarray, labels: tuple[str, ...] = THREE, **out: Any) -> Any:
    raw = np.zeros((1, 300, 6), np.float32)
    raw[0, : len(rows)] = rows
    spec = TensorSpec("output0", (1, 300, 6), np.dtype(np.float32))
    m = make_manifest("detection", labels, defect_labels=list(labels), output=out)
    post = choose_format(m, labels, (spec,), frozenset(labels))
    assert isinstance(post, EndToEndPostprocessor)
    return post([raw], IDENTITY)


def test_end_to_end_rows_are_taken_as_they_are_without_a_second_nms() -> None:
    # Two heavily overlapping boxes of one class: an NMS would drop the second; the head kept both.
    rows = np.array(
        [[8, 8, 24, 24, 0.9, 0], [9, 9, 25, 25, 0.8, 0], [32, 32, 48, 40, 0.6, 2], [0, 0, 4, 4, 0.1, 1]],
        np.float32,
    )
    result = e2e(rows)
    assert [(d.label, round(d.score, 3)) for d in result.detections] == [
        ("scratch", 0.9),
        ("scratch", 0.8),
        ("chip", 0.6),
    ]
    assert result.detections[2].box == pytest.approx((0.5, 0.5, 0.75, 0.625))
    assert result.scores == pytest.approx({"scratch": 0.9, "dent": 0.1, "chip": 0.6})


def test_end_to_end_normalized_boxes_and_a_class_beyond_the_labels() -> None:
    rows = np.array([[0.125, 0.125, 0.375, 0.375, 0.7, 1]], np.float32)
    assert e2e(rows, box_units="normalized").detections[0].box == pytest.approx((0.125, 0.125, 0.375, 0.375))
    with pytest.raises(ModelError, match="class index 5"):
        e2e(np.array([[0, 0, 1, 1, 0.9, 5]], np.float32))


def test_a_two_label_end_to_end_head_must_be_named_in_the_manifest() -> None:
    spec = TensorSpec("output0", (1, 300, 6), np.dtype(np.float32))
    auto = choose_format(manifest(), LABELS, (spec,), frozenset(LABELS))
    assert isinstance(auto, YoloPostprocessor)  # 4 + 2 labels is 6 wide too: a raw tensor by default
    named = choose_format(manifest(output={"format": "end2end"}), LABELS, (spec,), frozenset(LABELS))
    assert isinstance(named, EndToEndPostprocessor)
    with pytest.raises(ModelError, match=r"\[1, N, 6\]"):
        bad = TensorSpec("output0", (1, 300, 7), np.dtype(np.float32))
        choose_format(manifest(output={"format": "end2end"}), LABELS, (bad,), frozenset(LABELS))
