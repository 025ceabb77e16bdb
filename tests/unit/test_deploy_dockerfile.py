"""The images: hadolint-clean, multi-stage, non-root, and every COPY source exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import venv_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLE = ROOT / "docs" / "examples" / "crm"


@pytest.mark.parametrize("dockerfile", [DEPLOY / "Dockerfile", EXAMPLE / "Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    """hadolint finds nothing in deploy/Dockerfile, nor in the example's image on top of it."""
    out = subprocess.run(
        [venv_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists() -> None:
    """The image builds in one stage, runs as a non-root uid in another, and its COPY sources exist."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert user.split(":")[0].isdigit(), "USER must be numeric for runAsNonRoot to verify it"
    assert int(user.split(":")[0]) >= 1000
    assert re.search(r'^ENTRYPOINT \["projectionist"\]', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"COPY {part}: no such file"
            assert f"!{part}" in ignored or f"!{part}/" in ignored, (
                f"{part} is excluded by .dockerignore"
            )
