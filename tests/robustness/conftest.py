"""Fixtures of the hostile-input catalogue (the contract itself is in ``contract.py``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from contract import Outcome, Workspace

from focusgraph.graph.cli import main


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace whose files must be unchanged at the end unless a test says otherwise.

    Temporary files (of this process and of child processes) go to its ``tmp`` folder, so
    the workspace snapshot also shows any temporary file left behind.
    """
    space = Workspace(tmp_path)
    temp = space.root / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    yield space


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run ``focusgraph ARGS...`` in process and return its :class:`Outcome`."""

    def run(*args: str | Path) -> Outcome:
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture
def refuses(
    workspace: Workspace, cli: Callable[..., Outcome]
) -> Callable[..., tuple[Outcome, dict[str, str]]]:
    """Run the CLI expecting a refusal; assert the workspace is byte-identical afterwards."""

    def run(*args: str | Path) -> tuple[Outcome, dict[str, str]]:
        before = workspace.snapshot()
        outcome = cli(*args)
        after = workspace.snapshot()
        assert after == before, f"workspace changed: {set(after) ^ set(before) or 'contents'}"
        return outcome, after

    return run
