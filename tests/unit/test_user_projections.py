"""Loading users' projections: entry points, PROJECTIONIST_PROJECTIONS, table files, and the
one-line errors (exit 2) for every mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from consumers.app import projection_registry
from consumers.settings.models import load_settings
from projections import Projection
from projections.loading import referenced_projections
from projections.registry import ProjectionRegistry, Registered
from schemas.errors import ConfigurationError
from tests.support import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "crm"

MODULE = """
from collections.abc import Sequence
from sqlalchemy import Column, Connection, MetaData, String, Table
from projections import ApplyResult, Event, Projection

class Notes(Projection):
    name = "notes"
    version = 2
    topics = ("notes.events",)

    def define_tables(self, metadata: MetaData) -> None:
        self.notes = Table(self.table_name("notes"), metadata, Column("id", String(10), primary_key=True))

    def apply(self, conn: Connection, events: Sequence[Event]) -> ApplyResult:
        return ApplyResult(applied=0)

class Posts(Notes):
    name = "my_posts"
    def define_tables(self, metadata: MetaData) -> None:
        self.t = Table(self.table_name("posts"), metadata, Column("id", String(10), primary_key=True))

class Deaf(Notes):
    name = "deaf"
    def __init__(self, *, generation=None):
        super().__init__()

def notes_factory(*, generation=None):
    return Notes(generation=generation)

def not_a_projection(*, generation=None):
    return 42

INSTANCE = Notes()
NUMBER = 3
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "userpkg"
    folder.mkdir()
    (folder / "user_views.py").write_text(textwrap.dedent(MODULE))
    (folder / "broken_views.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_a_class_or_a_factory_becomes_a_projection_of_every_generation(user_module: Path) -> None:
    """module:attr loads a Projection subclass or a factory; the registry builds any generation."""
    registry = ProjectionRegistry(
        extra=referenced_projections(["user_views:Notes", "user_views:notes_factory"])[:1]
    )
    assert registry.names() == ["blog", "notifications", "orders", "notes"]
    built = registry.create("notes", generation=5)
    assert isinstance(built, Projection)
    assert (built.slot, built.tables()[0].name) == ("notes_v5", "notes_v5")
    assert registry.create("notes").generation == 2  # the code's version by default
    assert "notes.events" in registry.topics()
    (factory,) = referenced_projections(["user_views:notes_factory"])
    assert factory.factory(3).slot == "notes_v3"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nowhere_module:X", "no module named 'nowhere_module'"),
        ("broken_views:X", "importing broken_views failed: RuntimeError: boom at import"),
        ("user_views:Missing", "module 'user_views' has no attribute 'Missing'"),
        ("user_views", "expected module:attribute"),
        ("user_views:NUMBER", "is a int, not a Projection subclass"),
        ("user_views:INSTANCE", "is a projection instance"),
        ("user_views:not_a_projection", "returned a int, not a Projection"),
        ("user_views:Deaf", "ignores generation="),
    ],
)
def test_each_mistake_is_one_clear_line(user_module: Path, reference: str, message: str) -> None:
    """A missing module, a missing attribute, an object that is not a projection: one line each."""
    with pytest.raises(ConfigurationError) as caught:
        referenced_projections([reference])
    text = str(caught.value)
    assert message in text
    assert reference in text
    assert "\n" not in text


def test_clashes_with_shipped_names_and_tables_are_refused(user_module: Path) -> None:
    """A user projection may not take a shipped projection's name, nor another's table."""
    with pytest.raises(ConfigurationError, match="clashes with the shipped projection"):
        ProjectionRegistry(extra=referenced_projections(["projections.blog:BlogProjection"]))
    with pytest.raises(ConfigurationError, match=r"posts already belong to 'blog'"):
        ProjectionRegistry(extra=referenced_projections(["user_views:Posts"]))
    twice = referenced_projections(["user_views:Notes"])
    with pytest.raises(ConfigurationError, match="clashes with PROJECTIONIST_PROJECTIONS"):
        ProjectionRegistry(extra=[*twice, Registered("notes", twice[0].factory, "a file")])


def test_the_installed_example_is_found_through_its_entry_points() -> None:
    """The CRM example package (installed by make venv) brings its projection and schemas."""
    settings = load_settings(table_projections=str(EXAMPLE / "customers.toml"))
    registry = projection_registry(settings)
    assert registry.names()[-2:] == ["crm_customers", "crm_signups"]
    assert registry.origin("crm_signups").startswith("entry point crm_signups")
    assert registry.create("crm_customers").topics == ("crm.customers",)
    assert "crm.customers" in registry.topics()  # what `projectionist topics` creates
    off = projection_registry(load_settings(entry_points=False))
    assert "crm_signups" not in off


def test_cli_mistakes_exit_2_with_one_line(user_module: Path) -> None:
    """The CLI reports a loading mistake on one line of stderr, exit code 2, no traceback."""
    env = {"PYTHONPATH": str(user_module)}
    for variable, value, needle in [
        ("PROJECTIONIST_PROJECTIONS", "nowhere_module:X", "no module named 'nowhere_module'"),
        (
            "PROJECTIONIST_PROJECTIONS",
            "projections.blog:BlogProjection",
            "clashes with the shipped",
        ),
        ("PROJECTIONIST_PROJECTIONS", "user_views:NUMBER", "not a Projection subclass"),
        ("PROJECTIONIST_TABLE_PROJECTIONS", str(user_module / "none.toml"), "none.toml"),
    ]:
        result = run_cli(["status"], env={**env, variable: value})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1, lines
        assert needle in lines[0]
        assert "Traceback" not in result.stderr
    listed = run_cli(
        ["projections", "--json"], env={**env, "PROJECTIONIST_PROJECTIONS": "user_views:Notes"}
    )
    assert listed.returncode == 0, listed.stderr
    assert '"projection": "notes"' in listed.stdout
    assert '"tables": ["notes"]' in listed.stdout
