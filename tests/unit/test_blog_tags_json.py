"""The blog's direct tags encoding equals ``json.dumps``, and its reader ``json.loads``."""

from __future__ import annotations

import json
import random

import pytest

from projections.blog import _tags_json, _tags_of

# quotes, backslashes, separators, brackets, non-ASCII, control characters
_ALPHABET = ["a", "b", " ", '"', "\\", "é", "\x01", '",', '", "', "[", "]", "\u2028", "~", "\x7f"]


def test_same_text_as_json_dumps_and_read_back_as_json_loads() -> None:
    rng = random.Random(15)
    for _ in range(20_000):
        tags = [
            "".join(rng.choices(_ALPHABET, k=rng.randint(0, 6))) for _ in range(rng.randint(0, 5))
        ]
        assert _tags_json(tags) == json.dumps(tags), tags
        assert _tags_of(json.dumps(tags)) == tags, tags


def test_stored_by_another_writer_is_read_as_json() -> None:
    assert _tags_of('["a","b"]') == ["a", "b"]  # no space after the comma
    assert _tags_of(' ["a"]') == ["a"]


def test_plain_tags_take_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> str:
        raise AssertionError("json.dumps called for plain tags")

    monkeypatch.setattr(json, "dumps", refuse)
    assert _tags_json(["tag-001", "Tag Two", "x~y"]) == '["tag-001", "Tag Two", "x~y"]'
    assert _tags_of('["tag-001", "Tag Two"]') == ["tag-001", "Tag Two"]
