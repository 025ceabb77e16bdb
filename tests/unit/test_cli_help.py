"""`--help` of every command shows its options whole: no `<bool>`, nothing cut, env names kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from consumers.cli.program import app, readable_help


def _commands() -> Iterator[tuple[list[str], Any]]:
    readable_help()
    root = typer.main.get_command(app)

    def walk(path: list[str], command: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        if hasattr(command, "commands"):
            for name, sub in sorted(command.commands.items()):
                yield from walk([*path, name], sub)

    yield from walk([], root)


COMMANDS = list(_commands())


def _text(command: Any) -> str:
    """The help as written (a command's docstring when no help= was given)."""
    return command.help or (command.callback.__doc__ or "" if command.callback else "")


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "-" for p, _ in COMMANDS]
)
def test_help_shows_every_option_whole(path: list[str], command: Any) -> None:
    """Each option name and its env variable appear in full; flags carry no `<bool>`."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"TERMINAL_WIDTH": ""})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "<bool>" not in out
    written = [_text(command), *(getattr(p, "help", None) or "" for p in command.params)]
    if hasattr(command, "commands"):
        # a group lists the first line of each sub-command's help
        written += [_text(sub).strip().splitlines()[0] for sub in command.commands.values()]
    assert out.count("…") == "".join(written).count("…"), "a name, default or text was cut"
    # nothing written is swallowed by the markup (a "<topic>" taken for an HTML tag, a
    # "[env X]" for a style), and nothing is cut: every word of every help text shows
    shown = set(re.findall(r"[\w<>\[\]]+", out))
    lost = {w for text in written for w in re.findall(r"[\w<>\[\]]+", text)} - shown
    assert not lost, f"words of the help text missing from the output: {sorted(lost)}"
    for param in command.params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--"):
                assert opt in out, f"{opt} missing from `{' '.join(path)} --help`"
        help_text = getattr(param, "help", None) or ""
        if "[env " in help_text:
            env = help_text.split("[env ", 1)[1].split("]", 1)[0]
            assert f"[env {env}]" in " ".join(out.replace("│", " ").split()), env
