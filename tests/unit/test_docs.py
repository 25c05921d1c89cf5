"""Documentation stays in step with the code."""

from __future__ import annotations

import re

from shared.settings import Settings
from tests.helpers import repo_root


def test_every_setting_is_documented_in_readme() -> None:
    readme = (repo_root() / "README.md").read_text()
    documented = set(re.findall(r"`(LOGWARDEN_[A-Z_]+)`", readme))
    expected = {f"LOGWARDEN_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from README"
    assert documented - expected == set(), "README documents settings that do not exist"


def test_quick_start_is_exactly_two_commands() -> None:
    readme = (repo_root() / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_ci_runs_make_test_only() -> None:
    script = (repo_root() / ".ci" / "run").read_text()
    steps = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#") and not ln.startswith("set ")]
    assert steps[-1].strip() == "make test"
