"""The README documents what the code has: every setting, every command."""

from pathlib import Path

from amlscore.cli import main
from shared.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    missing = [f"AMLSCORE_{name.upper()}" for name in Settings.model_fields
               if f"| `AMLSCORE_{name.upper()}` |" not in README]
    assert not missing


def test_every_command_is_documented():
    assert all(f"amlscore {name}" in README for name in main.commands)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0].split()
    assert first_block == ["make", "demo", "make", "test"]
    assert "make test" in (Path(__file__).parents[2] / ".ci" / "run").read_text()
