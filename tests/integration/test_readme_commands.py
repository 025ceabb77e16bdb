"""The README's shell blocks run as written (embedded broker, SQLite), or say why not.

Every fenced shell block of the README is either run here, in a fresh folder, with
``bash -e``, or carries an annotation on the line before its fence:

* ``<!-- doc-test: skip: <reason> -->`` — it needs Kubernetes, Docker, or runs test
  suites or benchmarks; the reason is required and shown;
* ``<!-- doc-test: synopsis -->`` — a command overview with placeholders and services:
  each ``projectionist`` line is checked against the program (the command exists, and
  so does every flag it names).

Fixed ports of the README (``127.0.0.1:8080``, ``--port 9092``) are replaced by free
ones, because the machine is shared; nothing else is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from consumers.cli.program import app
from consumers.kafka.broker import free_port
from tests.support import TEST_ENV, missing, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
SHELL_LANGS = {"sh", "bash", "shell", "console"}
#: unlabelled blocks starting with one of these are shell too
SHELL_WORDS = {"projectionist", "make", "curl", "kubectl", "docker", "export", "python"}
ANNOTATION = re.compile(r"<!--\s*doc-test:\s*(?P<kind>[a-z]+)(?::\s*(?P<reason>.*?))?\s*-->")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    kind: str | None  # None: run it
    reason: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Block]:
    """Every fenced block of the README with its annotation (shell or not)."""
    lines = README.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        lang, start = lines[i][3:].strip(), i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        found = ANNOTATION.search(lines[start - 1]) if start else None
        blocks.append(
            Block(
                line=start + 1,
                lang=lang,
                text="\n".join(lines[start + 1 : end]) + "\n",
                kind=found["kind"] if found else None,
                reason=found["reason"] if found else None,
            )
        )
        i = end + 1
    return blocks


def is_shell(block: Block) -> bool:
    if block.lang in SHELL_LANGS:
        return True
    first = next((ln.split()[0] for ln in block.text.splitlines() if ln.strip()), "")
    return block.lang == "" and first in SHELL_WORDS


SHELL = [b for b in readme_blocks() if is_shell(b)]
RUNNABLE = [b for b in SHELL if b.kind is None]


def test_every_shell_block_runs_or_says_why_not() -> None:
    """Each shell block is run by this module, or annotated skip (with a reason) or synopsis."""
    assert len(SHELL) >= 8, "the README's shell blocks were not found"
    problems = []
    for block in SHELL:
        if block.kind not in (None, "skip", "synopsis"):
            problems.append(f"{block}: unknown annotation {block.kind!r}")
        if block.kind == "skip" and not block.reason:
            problems.append(f"{block}: a skip needs a reason")
    assert not problems, "\n".join(problems)
    assert any("projectionist produce" in b.text for b in RUNNABLE), "Try it by hand is not run"


def _commands() -> dict[tuple[str, ...], Any]:
    root = typer.main.get_command(app)
    out: dict[tuple[str, ...], Any] = {}

    def walk(path: tuple[str, ...], command: Any) -> None:
        out[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk((*path, name), sub)

    walk((), root)
    return out


def _synopsis_problems(line: str, commands: dict[tuple[str, ...], Any]) -> list[str]:
    words = shlex.split(line.split(" #", 1)[0])[1:]  # without "projectionist" and the comment
    path: tuple[str, ...] = ()
    alternatives: list[tuple[str, ...]] = [()]
    for word in words:
        options = word.split("|")
        candidates = [(*p, w) for p in alternatives for w in options]
        if not all(c in commands for c in candidates):
            if hasattr(commands[path], "commands"):  # a group wants a sub-command here
                return [f"{line!r}: no such command {' '.join((*path, word))!r}"]
            break
        alternatives, path = candidates, candidates[0]
    if not path:
        return [f"{line!r}: no such command"]
    problems = []
    flags = {f.strip("[]").split("=", 1)[0] for f in words if f.strip("[").startswith("--")}
    for command_path in alternatives:
        names = {
            opt
            for param in commands[command_path].params
            for opt in [*param.opts, *getattr(param, "secondary_opts", [])]
        } | {"--help"}
        problems += [
            f"{line!r}: `{' '.join(command_path)}` has no {flag}" for flag in flags - names
        ]
    return problems


@pytest.mark.parametrize("block", [b for b in SHELL if b.kind == "synopsis"], ids=str)
def test_synopsis_names_only_commands_and_flags_that_exist(block: Block) -> None:
    """Each `projectionist …` line of a synopsis block is a command with the flags it shows."""
    commands = _commands()
    lines = [ln.strip() for ln in block.text.splitlines() if ln.strip().startswith("projectionist")]
    assert lines, f"{block}: a synopsis without projectionist commands"
    problems = [p for ln in lines for p in _synopsis_problems(ln, commands)]
    assert not problems, "\n".join(problems)


def _on_free_ports(text: str) -> str:
    ports = set(re.findall(r"127\.0\.0\.1:(\d{2,5})\b", text)) | set(
        re.findall(r"--port (\d{2,5})\b", text)
    )
    for port in sorted(ports):
        new = str(free_port())
        text = re.sub(rf"(127\.0\.0\.1:|--port ){port}\b", rf"\g<1>{new}", text)
    return text


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROJECTIONIST_")}
    bin_dir = str(Path(sys.executable).parent)  # projectionist, python: this venv's
    return {**env, **TEST_ENV, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _run(block: Block, script: Path) -> str:
    """Run one block under ``bash -e`` in the script's folder; its stdout."""
    script.write_text("set -eo pipefail\n" + _on_free_ports(block.text))
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=script.parent,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its background servers share its process group
    )
    try:
        out, err = proc.communicate(timeout=150)
        wait_for(f"{block}'s background processes to end", lambda: _group_gone(proc.pid))
    finally:
        if not _group_gone(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{block} failed:\n{out[-3000:]}\n{err[-5000:]}"
    assert "Traceback" not in err, f"{block}:\n{err[-5000:]}"
    return out


def test_unannotated_shell_blocks_run_as_written(tmp_path: Path) -> None:
    """Every unannotated block exits 0 under `bash -e` and leaves no process behind; the
    "Try it by hand" answers are the ones the README promises."""
    for tool in ("bash", "curl"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed: the README's commands use it")
    ran = []
    for n, block in enumerate(RUNNABLE):
        out = _run(block, tmp_path / f"block-{n}.sh")
        ran.append(block)
        if "--ids-file ids.env" in block.text:
            _check_try_it(tmp_path, out)
    assert ran == RUNNABLE, "every unannotated shell block runs"


def _check_try_it(folder: Path, out: str) -> None:
    ids = dict(line.split("=", 1) for line in (folder / "ids.env").read_text().splitlines())
    assert set(ids) == {
        "POST_ID",
        "POST_VERSION",
        "TAG",
        "ORDER_ID",
        "ORDER_EVENT_ID",
        "CUSTOMER_ID",
    }
    assert f'"post_id":"{ids["POST_ID"]}"' in out, "the post of ids.env was served"
    assert f'"order_id":"{ids["ORDER_ID"]}"' in out
    assert f'"customer_id":"{ids["CUSTOMER_ID"]}"' in out
    assert '"error":"not_yet_applied"' in out
    assert "x-waited-ms:" in out.lower()
    assert "HTTP/1.1 422" in out
    assert "PAUSED since" in out, "status shows the pause"
    assert '"paused":{"since"' in out, "GET /status shows the pause"
    assert "blog resumed" in out
