"""The README stays true to the code it documents."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from hyperlinkr.config import SETTINGS_DOC

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(HYPERLINKR_[A-Z0-9_]+)` \|", README, re.M))
    assert documented == {row.env_name for row in SETTINGS_DOC}


def test_env_example_lists_every_setting() -> None:
    example = (REPO / ".env.example").read_text()
    for row in SETTINGS_DOC:
        assert f"# {row.env_name}=" in example, row.env_name


def test_ci_runs_the_readme_test_command() -> None:
    command = (
        "python3 -m venv .venv && . .venv/bin/activate && "
        "pip install -e '.[test]' && python -m pytest"
    )
    assert command in README
    assert command in (REPO / ".ci" / "run").read_text()


def test_procfile_roles_are_cli_commands() -> None:
    roles = re.findall(
        r"^(\w+): exec hyperlinkr (\w+)$", (REPO / "Procfile").read_text(), re.M
    )
    assert sorted(roles) == [
        ("analytics", "analytics"),
        ("persister", "persister"),
        ("web", "web"),
    ]
    help_text = subprocess.run(
        ["python", "-m", "hyperlinkr", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for _, command in roles:
        assert command in help_text
