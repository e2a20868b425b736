"""docs/cards.md is generated from the cards and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import Field

from cardflow.cards import data, registry
from cardflow.cards.base import CardInputs, CardOutcome, CardSpec
from cardflow.cards.docs import COMMAND, inputs_table, known_cards, render_card_reference

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cards.md"


def test_docs_file_is_the_generated_reference() -> None:
    expected = render_card_reference(known_cards())
    actual = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert actual == expected, f"docs/cards.md is out of date: run `{COMMAND}`"


def test_reference_covers_every_card() -> None:
    ids = {spec.id for spec in known_cards()}
    assert set(registry.CARDS) | {spec.id for spec in data.CARDS} == ids
    text = DOCS.read_text(encoding="utf-8")
    for card_id in ids:
        assert f"### `{card_id}`" in text, card_id
    for family in ("JSON", "XML", "Text", "Object"):
        assert f"\n## {family}\n" in text


def test_module_prints_the_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cardflow.cards.docs"], capture_output=True, check=True
    )
    assert done.stdout.decode("utf-8") == render_card_reference(known_cards())


class _Inputs(CardInputs):
    name: str = Field(description="Who | what.")
    size: int | None = Field(default=None, ge=1, le=5, description="How\nmany.")
    tags: list[str] = Field(default_factory=list)


async def _run(ctx: object, inputs: object) -> CardOutcome:
    return CardOutcome({})


def test_inputs_table_comes_from_the_model() -> None:
    assert inputs_table(_Inputs) == [
        "| input | type | required | default | description |",
        "|---|---|---|---|---|",
        "| `name` | text | yes |  | Who \\| what. |",
        "| `size` | integer (≥ 1, ≤ 5) or null | no | `null` | How many. |",
        "| `tags` | list of text | no | `[]` |  |",
    ]


def test_card_section_has_description_outputs_and_example() -> None:
    spec = CardSpec(
        id="demo.card",
        family="Demo",
        title="Demo",
        description="Does a demo.",
        inputs=_Inputs,
        run=_run,
        outputs=("output",),
        example={"name": "{{ trigger.body.name }}"},
    )
    text = render_card_reference([spec])
    assert text.startswith("# Cards\n")
    assert COMMAND in text
    assert "\n## Demo\n\n### `demo.card` — Demo\n\nDoes a demo.\n" in text
    assert "Outputs: `output`." in text
    assert "```yaml\n- id: card\n  card: demo.card\n  inputs:\n" in text
    assert "    name: '{{ trigger.body.name }}'\n```" in text
