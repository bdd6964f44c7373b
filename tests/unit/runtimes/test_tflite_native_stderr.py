"""The LiteRT C++ library's "INFO: Created TensorFlow Lite XNNPACK delegate" line stays off the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from structlog.testing import capture_logs

from agent.runtimes.tflite import native_stderr_to_log
from tests.support.paths import DEMO_MODEL, REPO


def test_model_info_prints_no_native_info_line() -> None:
    pytest.importorskip("ai_edge_litert")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "model", "info", str(DEMO_MODEL)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr + result.stdout
    assert result.stdout.startswith("name: demo-defects")


def test_other_native_output_is_written_back_and_the_info_line_is_logged(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with capture_logs() as logs, native_stderr_to_log():  # a configured log, as under `run`
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: something the library really says\n")
    err = capfd.readouterr().err
    assert err == "ERROR: something the library really says\n"
    assert [e["event"] for e in logs] == ["tflite_native_info"]
    assert "XNNPACK" in logs[0]["message"]
    os.write(2, b"")  # fd 2 works again after the block
