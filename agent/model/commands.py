"""``inspection-agent model …``: validate, info, pack, import, sign, keygen.

Exit codes follow :mod:`agent.cli`: 0 all good, 1 validate found problems, 2 bad
usage, 3 the package could not be read or built (the error says why, on one line).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

_TARBALL = (".tar.gz", ".tgz", ".tar")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("model", help="validate, describe, build and sign model packages")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    _add_validate(sub)
    _add_info(sub)
    _add_pack(sub)
    _add_sign(sub)
    from agent.model import eval_commands, promote_commands
    from agent.model.importers import cli as import_cli

    eval_commands.register(sub)
    promote_commands.register(sub)
    import_cli.register(sub)
    keygen = sub.add_parser("keygen", help="make an ed25519 key pair: PREFIX.key (private) and PREFIX.pub")
    keygen.add_argument("--out", required=True, metavar="PREFIX")
    keygen.set_defaults(func=_keygen)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


@contextmanager
def package_dir(path: str) -> Iterator[Path]:
    """A package directory; a ``.tar.gz`` package is unpacked (safely) into a temporary one first."""
    p = Path(path)
    if p.is_file() and p.name.endswith(_TARBALL):
        from agent.model.archive import unpack_package

        with tempfile.TemporaryDirectory(prefix="inspection-model-") as tmp:
            yield unpack_package(p, Path(tmp))
    else:
        yield p


# --- validate ---------------------------------------------------------------------------------


def _add_validate(sub: Any) -> None:
    p = sub.add_parser(
        "validate", help="prove a package: checksums, signature, tensors, golden images, latency"
    )
    p.add_argument("path", help="package directory or .tar.gz")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--runs", type=int, default=100, help="timed runs for p50/p99 latency (default 100)")
    p.add_argument(
        "--runtime", choices=["auto", "tflite", "onnx"], help="only this runtime (default: every one carried)"
    )
    p.add_argument(
        "--config", help="device config: model.require_signature, trusted_keys, threads, providers"
    )
    p.add_argument("--require-signature", action="store_true", help="fail unless signed by a --trusted-key")
    p.add_argument(
        "--trusted-key", action="append", default=[], metavar="FILE", help="ed25519 public key (repeatable)"
    )
    p.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.config.schema import ModelConfig
    from agent.model.validate import validate_package

    keys, required, cfg = list(args.trusted_key), bool(args.require_signature), None
    if args.config:
        agent_cfg = load_config(args.config)
        base: Path = getattr(agent_cfg, "base_dir", Path.cwd())
        keys += [str(k if Path(k).is_absolute() else base / k) for k in agent_cfg.model.trusted_keys]
        required = required or agent_cfg.model.require_signature
        cfg = agent_cfg.model
    if required and not keys:
        raise ConfigError(
            "--require-signature needs at least one --trusted-key (or trusted_keys in the config)"
        )
    with package_dir(args.path) as root:
        model_cfg = cfg or ModelConfig(path=str(root))
        report = validate_package(
            root,
            runtime=args.runtime,
            runs=args.runs,
            cfg=model_cfg,
            trusted_keys=keys,
            require_signature=required,
        )
    if args.json:
        _out(json.dumps(report.to_json(), sort_keys=True))
    else:
        for check in report.checks:
            _out(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        _out(f"{'PASS' if report.ok else 'FAIL'}: {args.path}")
    return 0 if report.ok else 1


# --- info -------------------------------------------------------------------------------------


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="print the manifest and the model's real tensors")
    p.add_argument("path", help="package directory or .tar.gz")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info)


def _tensor(spec: Any) -> dict[str, Any]:
    quant = {"scale": spec.scale, "zero_point": spec.zero_point} if spec.quantized else None
    return {"name": spec.name, "shape": list(spec.shape), "dtype": str(spec.dtype), "quantization": quant}


LONG_LIST = 8  # longer lists of numbers (the drift reference's quantiles) are summarized for people


def readable_manifest(text: str) -> str:
    """The manifest for a person: long number lists (256 reference quantiles) as one summary line.
    ``--json`` keeps the manifest as written."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return text.rstrip()
    return str(
        yaml.safe_dump(
            _summarized(doc), sort_keys=False, width=110, default_flow_style=None, allow_unicode=True
        )
    ).rstrip()


def _summarized(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _summarized(v) for k, v in node.items()}
    if not isinstance(node, list):
        return node
    if len(node) > LONG_LIST and all(isinstance(v, int | float) and not isinstance(v, bool) for v in node):
        ordered = sorted(node)
        return (
            f"{len(node)} values: min {ordered[0]:g}, median {ordered[len(node) // 2]:g}, max {ordered[-1]:g}"
        )
    return [_summarized(v) for v in node]


def _info(args: argparse.Namespace) -> int:
    from agent.config.schema import ModelConfig
    from agent.model.package import MANIFEST, open_package
    from agent.runtimes import open_runtime

    with package_dir(args.path) as root:
        text = (root / MANIFEST).read_text(encoding="utf-8") if (root / MANIFEST).is_file() else ""
        first = open_package(root)
        tensors: dict[str, Any] = {}
        for kind in first.manifest.files():
            package = open_package(root, kind)
            runtime = open_runtime(kind, package.model_file, ModelConfig(path=str(root)))
            tensors[kind] = {
                "file": package.model_file.name,
                "inputs": [_tensor(t) for t in runtime.inputs],
                "outputs": [_tensor(t) for t in runtime.outputs],
            }
            runtime.close()
    if args.json:
        _out(json.dumps({"manifest": text, "labels": list(first.labels), "tensors": tensors}, sort_keys=True))
        return 0
    _out(readable_manifest(text))
    for name, info in tensors.items():
        _out(f"\n{name}: {info['file']}")
        for role in ("inputs", "outputs"):
            for t in info[role]:
                q = (
                    f" scale={t['quantization']['scale']:.6g} zero_point={t['quantization']['zero_point']}"
                    if t["quantization"]
                    else ""
                )
                shape = "[" + ", ".join("?" if d is None else str(d) for d in t["shape"]) + "]"
                _out(f"  {role[:-1]:6s} {t['name']}: {shape} {t['dtype']}{q}")
    return 0


# --- pack -------------------------------------------------------------------------------------


def _add_pack(sub: Any) -> None:
    p = sub.add_parser("pack", help="build a package (manifest, sha256, golden expected.json, CHECKSUMS)")
    p.add_argument("models", nargs="*", type=Path, metavar="MODEL_FILE", help="one .tflite and/or one .onnx")
    p.add_argument(
        "--from-manifest", type=Path, help="repack from an existing manifest.yaml (its files and keys)"
    )
    p.add_argument("--out", type=Path, required=True, help="package directory to create (must not exist)")
    p.add_argument("--tar", action="store_true", help="also write OUT.tar.gz")
    p.add_argument("--name")
    p.add_argument("--version")
    p.add_argument("--task", choices=["classification", "detection", "anomaly"])
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", help="comma-separated, in the model's output order")
    labels.add_argument("--labels-file", type=Path, help="one label per line")
    p.add_argument("--defect-labels", help="comma-separated (default: every label but the first)")
    p.add_argument("--input-size", metavar="WxH")
    p.add_argument("--color", choices=["RGB", "BGR", "GRAY"])
    p.add_argument("--layout", choices=["NHWC", "NCHW"])
    p.add_argument("--resize", choices=["stretch", "letterbox", "center_crop"])
    p.add_argument("--scale", type=float)
    p.add_argument("--mean", help="comma-separated, 1 or one per channel")
    p.add_argument("--std", help="comma-separated, 1 or one per channel")
    p.add_argument("--activation", choices=["none", "softmax", "sigmoid"])
    p.add_argument("--output-format", choices=["auto", "scores", "ssd", "yolo", "end2end", "score", "map"])
    p.add_argument("--objectness", action="store_true", help="YOLO raw tensor has an objectness column")
    p.add_argument("--budget-ms", type=float)
    p.add_argument("--description")
    p.add_argument("--golden", type=Path, help="directory of golden images (expected.json is computed)")
    p.add_argument("--tolerance", type=float, default=0.1, help="golden score tolerance (default 0.1)")
    p.set_defaults(func=_pack)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise ConfigError(f"not a comma-separated list of numbers: {text!r}") from exc


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise ConfigError(f"--input-size must look like 224x224, got {text!r}")
    return int(w), int(h)


def _pack_manifest(args: argparse.Namespace) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key in ("name", "version", "task", "description"):
        if getattr(args, key) is not None:
            doc[key] = getattr(args, key)
    if args.budget_ms is not None:
        doc["budget_ms"] = args.budget_ms
    if args.labels:
        doc["labels"] = [v.strip() for v in args.labels.split(",") if v.strip()]
    if args.defect_labels:
        doc["defect_labels"] = [v.strip() for v in args.defect_labels.split(",") if v.strip()]
    inp = _input_section(args)
    if inp:
        doc["input"] = inp
    out = {
        k: v for k, v in (("activation", args.activation), ("format", args.output_format)) if v is not None
    }
    if args.objectness:
        out["objectness"] = True
    if out:
        doc["output"] = out
    return doc


def _input_section(args: argparse.Namespace) -> dict[str, Any]:
    inp: dict[str, Any] = {}
    if args.input_size:
        inp["width"], inp["height"] = _size(args.input_size)
    for key in ("color", "layout", "resize", "scale"):
        if getattr(args, key) is not None:
            inp[key] = getattr(args, key)
    for key in ("mean", "std"):
        if getattr(args, key):
            inp[key] = _floats(getattr(args, key))
    return inp


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def _pack(args: argparse.Namespace) -> int:
    from agent.model.pack import manifest_for_repack, pack

    doc: dict[str, Any] = {}
    models: list[Path] = list(args.models)
    labels_file, golden = args.labels_file, args.golden
    if args.from_manifest is not None:
        doc, listed, old_labels, old_golden = manifest_for_repack(args.from_manifest)
        models = models or listed
        labels_file = labels_file or (old_labels if not args.labels else None)
        golden = golden or old_golden
    elif not models:
        raise ConfigError("model pack needs MODEL_FILE(s) or --from-manifest")
    doc = _merge(doc, _pack_manifest(args))
    if args.labels:
        doc.pop("labels_file", None)
    result = pack(
        doc, models, args.out, labels_file=labels_file, golden=golden, tolerance=args.tolerance, tar=args.tar
    )
    _out(f"packed {result.root} ({', '.join(result.runtimes)}; {result.golden_images} golden images)")
    if result.tarball is not None:
        _out(f"wrote {result.tarball}")
    return 0


# --- sign / keygen ----------------------------------------------------------------------------


def _add_sign(sub: Any) -> None:
    p = sub.add_parser("sign", help="write CHECKSUMS and an ed25519 signature over it")
    p.add_argument("path", type=Path, help="package directory")
    p.add_argument("--key", required=True, type=Path, help="ed25519 private key (PEM or 32-byte hex)")
    p.add_argument("--tar", action="store_true", help="also (re)write PATH.tar.gz")
    p.set_defaults(func=_sign)


def _sign(args: argparse.Namespace) -> int:
    from agent.errors import ModelError
    from agent.model.pack import make_tarball
    from agent.model.signing import sign_package

    if not args.path.is_dir():
        raise ModelError(f"{args.path} is not a package directory (sign the directory, then use --tar)")
    _out(f"wrote {sign_package(args.path.resolve(), args.key)}")
    if args.tar:
        _out(f"wrote {make_tarball(args.path.resolve())}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from agent.model.signing import generate_keypair

    private, public = generate_keypair(args.out)
    _out(f"private key {private} (keep it off devices), public key {public} (list it in model.trusted_keys)")
    return 0
