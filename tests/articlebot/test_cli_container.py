"""The CLI as the Docker image runs it: the demo's samples live outside the package there."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from articlebot.cli import SAMPLES_DIR, CliError, app, samples_dir


def test_the_demo_finds_its_samples_where_articlebot_samples_dir_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARTICLEBOT_SAMPLES_DIR", raising=False)
    assert samples_dir() == SAMPLES_DIR
    monkeypatch.setenv("ARTICLEBOT_SAMPLES_DIR", str(tmp_path / "samples"))
    assert samples_dir() == tmp_path / "samples"
    result = CliRunner().invoke(app, ["demo", "--index", str(tmp_path / "index")])
    assert isinstance(result.exception, CliError)
    assert str(result.exception).startswith(
        f"the sample articles are not in {tmp_path / 'samples'};")
    assert "ARTICLEBOT_SAMPLES_DIR" in str(result.exception)
    assert not (tmp_path / "index").exists()
