"""`inspection-agent --help` speaks to its users, not to the developers of the module."""

from __future__ import annotations

import pytest

from agent.cli import main


def test_help_describes_the_tool_with_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "Edge visual inspection" in out and "inspection-agent status" in out and "exit codes:" in out
    assert "dispatches" not in out and "registers itself" not in out
