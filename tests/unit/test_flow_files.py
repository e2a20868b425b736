"""Flow files (YAML or JSON) are refused, not parsed at length, when they nest too deeply."""

from __future__ import annotations

import pytest

from cardflow.errors import InvalidInput
from cardflow.flows.model import parse_text


@pytest.mark.parametrize(
    "text",
    [
        "[" * 501 + "]" * 501,  # flow style, balanced
        "name: x\ncards: " + "[" * 1_000_000,  # flow style, never closed
        '"quoted": ' + "{" * 600,
        "- " * 600 + "x\n",  # block style, compact
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 600)),  # block style, indented
    ],
    ids=["brackets", "unclosed", "braces", "compact-block", "indented-block"],
)
def test_deep_yaml_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="nests too deeply"):
        parse_text(text, filename="flow.yaml")


def test_ordinary_yaml_still_parses() -> None:
    text = "name: x\ncards: [{id: a, inputs: {list: [[1, 2], [3]]}}]\nnote: 'a [ b { c'\n"
    assert parse_text(text, filename="flow.yaml") == {
        "name": "x",
        "cards": [{"id": "a", "inputs": {"list": [[1, 2], [3]]}}],
        "note": "a [ b { c",
    }
    assert parse_text("[" * 100 + "]" * 100, filename="flow.yaml") is not None
