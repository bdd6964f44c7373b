"""Datasets out and back in: Label Studio tasks -> annotations as Label Studio writes them -> votes;
COCO (read back with pycocotools) and YOLO exports of detection samples, split and provenance kept."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.collector.dataset import Split, export
from agent.collector.formats.label_studio import import_annotations
from agent.collector.review.queries import audit, votes
from agent.errors import AgentError
from tests.unit.collector.conftest import Parts
from tests.unit.collector.samples import jpeg, meta, v5

SPLIT = Split.parse("70/15/15")
W, H = 64, 48  # the sample JPEGs


def collect(parts: Parts, n: int, *, detections: bool = False) -> list[str]:
    msgs, ids = [], []
    for i in range(n):
        data = jpeg(W, H, seed=i)
        extra: dict[str, Any] = {"score": round(0.5 + i / 100, 3)}
        if detections:
            extra["scores"] = {"scratch": extra["score"], "dent": 0.2}
            extra["detections"] = [
                {"label": "scratch", "score": extra["score"], "box": [0.25, 0.25, 0.5, 0.75]}
            ]
        doc = meta(data, label="scratch" if detections else "ok", **extra)
        ids.append(doc["id"])
        msgs.append(v5(doc, data, mid=i))
    parts.ingest.process(msgs)
    return ids


def annotated(tasks: list[dict[str, Any]], answer: Any, user: Any = None) -> list[dict[str, Any]]:
    """The tasks as Label Studio's JSON export returns them after a person annotated each."""
    out = []
    for number, t in enumerate(tasks, start=1):
        result = answer(t)
        out.append({
            "id": number, "project": 3, "data": t["data"], "predictions": t["predictions"],
            "annotations": [{
                "id": 1000 + number, "completed_by": user if user is not None else 10, "result": result,
                "was_cancelled": False, "ground_truth": False, "lead_time": 4.2, "result_count": 0,
                "task": number, "created_at": "2025-01-15T10:20:30.000Z",
            }],
        })  # fmt: skip
    return out


def choice(label: str) -> Any:
    return lambda _t: [{"id": "a1", "from_name": "label", "to_name": "image", "type": "choices",
                        "origin": "manual", "value": {"choices": [label]}}]  # fmt: skip


def test_label_studio_round_trip_brings_back_votes_by_annotator(parts: Parts, tmp_path: Path) -> None:
    ids = collect(parts, 20)
    out = tmp_path / "ls"
    summary = export(parts.review, out, fmt="label-studio", split=SPLIT, seed=0, image_url="https://files/x/")
    tasks = json.loads((out / "tasks.json").read_text())
    assert summary["samples"] == len(tasks) == 20 and summary["task"] == "classification"
    assert [t["data"]["score"] for t in tasks] == sorted(t["data"]["score"] for t in tasks)  # unsure first
    first = tasks[0]
    assert first["data"]["image"] == f"https://files/x/images/{first['data']['sample_id']}.jpg"
    assert first["predictions"][0]["result"][0]["value"] == {"choices": ["ok"]}
    assert '<Choice value="scratch"/>' in (out / "labeling_config.xml").read_text()
    prov = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    assert Counter(p["split"] for p in prov) == {"train": 14, "val": 3, "test": 3}
    assert all((out / p["path"]).is_file() for p in prov)

    report = import_annotations(parts.review, annotated(tasks, choice("scratch")), {"10": "anna"})
    assert (report.votes, report.problems) == (20, [])
    assert {r["reviewer"] for i in ids for r in votes(parts.index, i)} == {"label-studio:anna"}
    trail = audit(parts.index, ids[0])
    assert [(a["actor"], a["action"], a["label"]) for a in trail][-2:] == [
        ("label-studio:anna", "vote", "scratch"),
        ("consensus", "labeled", "scratch"),
    ]
    again = import_annotations(parts.review, annotated(tasks, choice("ok")), {"10": "anna"})
    assert again.votes == 0 and len(again.problems) == 20  # never overwritten silently
    assert "already labeled scratch" in again.problems[0]
    folder = export(parts.review, tmp_path / "folder", fmt="imagefolder", split=SPLIT, seed=0)
    assert sum(folder["counts"].values()) == 20 and all(k.endswith("/scratch") for k in folder["counts"])


def test_bad_label_studio_items_are_reported_one_by_one_and_the_rest_imported(
    parts: Parts, tmp_path: Path
) -> None:
    collect(parts, 3)
    export(parts.review, tmp_path / "ls", fmt="label-studio", split=SPLIT, seed=0)
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    done = annotated(tasks, choice("ok"), user={"id": 4, "email": "bo@example.com"})
    done[0]["data"] = {**done[0]["data"], "sample_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}
    done[1]["annotations"][0]["result"] = choice("rust")(None)
    done.append({"id": 99, "data": {"image": "x.jpg"}, "annotations": []})
    report = import_annotations(parts.review, done)
    assert report.votes == 1
    assert [p.split(":")[0] for p in report.problems] == [
        "task 1",
        "task 2 (" + tasks[1]["data"]["sample_id"] + ")",
        "task 99",
    ]
    assert "unknown sample id 01HZZZZZZZZZZZZZZZZZZZZZZZ" in report.problems[0]
    assert "'rust' is not a label of demo-defects" in report.problems[1]
    assert "(none in data.sample_id)" in report.problems[2]
    assert [v["reviewer"] for v in votes(parts.index, tasks[2]["data"]["sample_id"])] == [
        "label-studio:bo@example.com"
    ]
    assert votes(parts.index, tasks[1]["data"]["sample_id"]) == []


def rectangles(*boxes: tuple[str, float, float, float, float]) -> Any:
    """Label Studio rectangles: x, y, width, height in percent of the image."""
    return lambda _t: [
        {"id": f"r{i}", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
         "original_width": W, "original_height": H, "image_rotation": 0, "origin": "manual",
         "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [name]}}
        for i, (name, x, y, w, h) in enumerate(boxes)
    ]  # fmt: skip


def test_detection_round_trip_to_coco_read_by_pycocotools_and_yolo(parts: Parts, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    ids = collect(parts, 10, detections=True)
    out = tmp_path / "ls"
    export(parts.review, out, fmt="label-studio", split=SPLIT, seed=0)
    tasks = json.loads((out / "tasks.json").read_text())
    pre = tasks[0]["predictions"][0]["result"][0]
    assert pre["type"] == "rectanglelabels" and pre["value"]["rectanglelabels"] == ["scratch"]
    assert (pre["value"]["x"], pre["value"]["y"], pre["value"]["width"], pre["value"]["height"]) == (
        25,
        25,
        25,
        50,
    )
    assert "<RectangleLabels" in (out / "labeling_config.xml").read_text()
    # The annotator moves the scratch and adds a dent (25% = 16 px of 64, 50% = 24 px of 48).
    drawn = rectangles(
        ("scratch", 50.0, 0.0, 25.0, 50.0), ("dent", 0.0, 50.0, 12.5, 25.0), ("scratch", 0, 0, 10, 10)
    )
    report = import_annotations(
        parts.review, annotated(tasks, drawn, user={"id": 1, "email": "cy@example.com"})
    )
    assert (report.votes, report.boxes, report.problems) == (10, 30, [])

    coco_dir = tmp_path / "coco"
    summary = export(parts.review, coco_dir, fmt="coco", split=SPLIT, seed=0)
    assert summary["classes"] == ["scratch", "dent"] and summary["boxes"] == 30
    images = 0
    for split in ("train", "val", "test"):
        coco = COCO(str(coco_dir / "annotations" / f"instances_{split}.json"))
        images += len(coco.getImgIds())
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            assert (coco_dir / "images" / split / info["file_name"]).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            dent = [a for a in anns if coco.loadCats(a["category_id"])[0]["name"] == "dent"]
            assert [a["bbox"] for a in dent] == [[0.0, 24.0, 8.0, 12.0]]  # pixels, top-left corner
    assert images == 10
    prov = [json.loads(line) for line in (coco_dir / "provenance.jsonl").read_text().splitlines()]
    assert {p["boxes"] for p in prov} == {"annotator:label-studio:cy@example.com"}
    assert Counter(p["split"] for p in prov) == {"train": 7, "val": 2, "test": 1}

    yolo_dir = tmp_path / "yolo"
    export(parts.review, yolo_dir, fmt="yolo", split=SPLIT, seed=0)
    data = yaml.safe_load((yolo_dir / "data.yaml").read_text())
    assert data["names"] == {0: "scratch", 1: "dent"} and data["train"] == "images/train"
    lines = next(yolo_dir.glob("labels/*/*.txt")).read_text().splitlines()
    assert "1 0.062500 0.625000 0.125000 0.250000" in lines  # class cx cy w h, 0..1
    assert len(list(yolo_dir.glob("images/*/*.jpg"))) == len(ids)


def test_model_boxes_are_used_when_the_consensus_agrees_with_the_model(parts: Parts, tmp_path: Path) -> None:
    from agent.collector.dataset import label_samples

    ids = collect(parts, 2, detections=True)
    assert label_samples(parts.review, ids, "scratch", reviewer="web:dee") == []
    export(parts.review, tmp_path / "y", fmt="yolo", split=Split.parse("50/50"), seed=0)
    prov = [json.loads(line) for line in (tmp_path / "y" / "provenance.jsonl").read_text().splitlines()]
    assert {p["boxes"] for p in prov} == {"model"}
    assert (
        "0 0.375000 0.500000 0.250000 0.500000" in next((tmp_path / "y").glob("labels/*/*.txt")).read_text()
    )


def test_box_formats_refuse_classifier_samples(parts: Parts, tmp_path: Path) -> None:
    from agent.collector.dataset import label_samples

    ids = collect(parts, 2)
    label_samples(parts.review, ids, "ok", reviewer="web:dee")
    with pytest.raises(AgentError, match="none of these samples comes from a detection model"):
        export(parts.review, tmp_path / "c", fmt="coco", split=SPLIT, seed=0)


def test_dataset_import_command_reports_each_problem_and_exits_1(parts: Parts, tmp_path: Path) -> None:
    from tests.support.agentproc import run_agent

    collect(parts, 2)
    config = str(tmp_path / "collector.yaml")
    done = run_agent(["dataset", "export", "--format", "label-studio", "--to", str(tmp_path / "ls"),
                      "--config", config])  # fmt: skip
    assert done.returncode == 0, done.stderr
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    finished = annotated(tasks, choice("scratch"))
    finished[1]["annotations"][0]["result"] = choice("rust")(None)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(finished))
    args = [
        "dataset",
        "import",
        "--format",
        "label-studio",
        str(path),
        "--annotator",
        "10=anna",
        "--config",
        config,
    ]
    done = run_agent(args)
    assert done.returncode == 1
    assert "imported 1 vote(s)" in done.stdout and "1 not imported" in done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("inspection-agent: dataset import: task 2 (") and "label-studio:anna" in line
