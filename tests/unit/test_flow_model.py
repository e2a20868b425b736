"""The flow model: nested cards parsed once when a document is loaded, and one walk."""

from __future__ import annotations

from typing import Any

import pytest

from cardflow.errors import InvalidInput
from cardflow.flows.model import (
    CardStep,
    FlowDocument,
    FlowSnapshot,
    dump_document,
    load_document,
    parse_text,
    walk,
)
from cardflow.flows.validate import check_flow


def card(card_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": card_id, "card": "object.construct", **extra}


def for_each(card_id: str, cards: Any, **inputs: Any) -> dict[str, Any]:
    return {
        "id": card_id,
        "card": "list.for_each",
        "inputs": {"list": [], "cards": cards, **inputs},
    }


def if_else(card_id: str, then: Any, otherwise: Any = None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"condition": True, "then": then}
    if otherwise is not None:
        inputs["else"] = otherwise
    return {"id": card_id, "card": "branch.if_else", "inputs": inputs}


NESTED = {
    "name": "nested",
    "cards": [
        card("first", connection="svc"),
        for_each(
            "loop",
            [card("in_loop"), if_else("branch", [card("yes", connection="deep")], [card("no")])],
        ),
        card("last"),
    ],
}


def test_walk_visits_every_card_with_its_path_parents_first() -> None:
    document = load_document(NESTED)
    placed = [(at.path, at.step.id, at.depth) for at in document.walk()]
    assert placed == [
        ("cards.0", "first", 0),
        ("cards.1", "loop", 0),
        ("cards.1.inputs.cards.0", "in_loop", 1),
        ("cards.1.inputs.cards.1", "branch", 1),
        ("cards.1.inputs.cards.1.inputs.then.0", "yes", 2),
        ("cards.1.inputs.cards.1.inputs.else.0", "no", 2),
        ("cards.2", "last", 0),
    ]
    yes = next(at for at in document.walk() if at.step.id == "yes")
    assert yes.list_path == "cards.1.inputs.cards.1.inputs.then"
    assert yes.parent is not None and yes.parent.step.id == "branch"
    assert yes.parent.parent is not None and yes.parent.parent.step.id == "loop"
    # the same walk over a list of cards, from any path
    assert [at.path for at in walk(document.cards[1].nested["cards"], "x")] == [
        "x.0",
        "x.1",
        "x.1.inputs.then.0",
        "x.1.inputs.else.0",
    ]


def test_nested_cards_are_typed_steps_and_not_data() -> None:
    loop = load_document(NESTED).cards[1]
    assert set(loop.nested) == {"cards"}
    assert all(isinstance(step, CardStep) for step in loop.nested["cards"])
    branch = loop.nested["cards"][1]
    assert [s.id for s in branch.nested["then"]] == ["yes"]
    assert branch.nested["then"][0].connection == "deep"
    assert loop.data_inputs == {"list": []}
    assert branch.data_inputs == {"condition": True}
    plain = load_document(NESTED).cards[0]
    assert plain.nested == {} and plain.data_inputs == plain.inputs
    # an input that holds cards but is left out: no cards
    alone = load_document({"name": "x", "cards": [{"id": "b", "card": "branch.if_else"}]})
    assert alone.cards[0].nested == {"then": [], "else": []}


def test_documents_dump_nested_cards_under_their_inputs_as_written() -> None:
    document = load_document(NESTED)
    assert document.model_dump(mode="json")["cards"][1]["inputs"] == NESTED["cards"][1]["inputs"]
    for fmt in ("yaml", "json"):
        text = dump_document(document, fmt)  # type: ignore[arg-type]
        again = load_document(parse_text(text, filename=f"flow.{fmt}"))
        assert again == document
        assert again.cards[1].inputs == NESTED["cards"][1]["inputs"]


def test_snapshot_connections_include_nested_cards() -> None:
    snapshot = FlowSnapshot("flw_1", "nested", load_document(NESTED))
    assert snapshot.connections == frozenset({"svc", "deep"})


@pytest.mark.parametrize(
    ("cards", "field", "message"),
    [
        (
            [for_each("loop", [{"id": "n"}])],
            "cards.0.inputs.cards.0.card",
            "cards.0.inputs.cards.0.card: this field is required",
        ),
        (
            [card("a"), if_else("b", [card("ok")], [card("n", bogus=1)])],
            "cards.1.inputs.else.0.bogus",
            "cards.1.inputs.else.0.bogus: unknown field",
        ),
        (
            [for_each("loop", [if_else("b", [card("ok"), {"id": "bad id", "card": "x"}])])],
            "cards.0.inputs.cards.0.inputs.then.1.id",
            "cards.0.inputs.cards.0.inputs.then.1.id: String should match pattern",
        ),
        (
            [if_else("b", "not cards")],
            "cards.0.inputs.then",
            "Card 'b': inputs.then must be a list of cards.",
        ),
        (
            [if_else("b", [for_each("loop", {"id": "x"})])],
            "cards.0.inputs.then.0.inputs.cards",
            "Card 'loop': inputs.cards must be a list of cards.",
        ),
        (
            [for_each("loop", [None])],
            "cards.0.inputs.cards.0",
            "cards.0.inputs.cards.0: Input should be a valid dictionary",
        ),
    ],
)
def test_a_nested_card_that_does_not_parse_is_named_by_its_path(
    cards: list[Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        load_document({"name": "x", "cards": cards})
    assert raised.value.field == field
    assert raised.value.message.startswith(message)
    with pytest.raises(InvalidInput) as again:  # however the document is validated
        FlowDocument.model_validate({"name": "x", "cards": cards})
    assert again.value.field == field


def test_a_card_on_its_own_names_nested_fields_from_its_inputs() -> None:
    """Test this card: the step is made from the request, whose fields are inputs.*."""
    step = CardStep.model_construct(
        id="test", card="list.for_each", inputs={"list": [1], "cards": [{"id": "n"}]}
    )
    with pytest.raises(InvalidInput) as raised:
        step.parse_nested("")
    assert raised.value.field == "inputs.cards.0.card"
    step = CardStep.model_construct(id="test", card="list.for_each", inputs={"cards": 3})
    with pytest.raises(InvalidInput) as raised:
        step.parse_nested("")
    assert (raised.value.field, raised.value.message) == (
        "inputs.cards",
        "inputs.cards must be a list of cards.",
    )
    made = CardStep.model_construct(id="t", card="list.for_each", inputs={"cards": [card("n")]})
    assert [s.id for s in made.nested["cards"]] == ["n"]  # parsed when first asked


@pytest.mark.parametrize(
    ("cards", "field", "words"),
    [
        # a card in a branch sees the cards before its control card, not the other branch
        (
            [
                card("before"),
                if_else(
                    "b",
                    [card("t", inputs={"v": "{{ steps.before }}"})],
                    [card("e", inputs={"v": "{{ steps.t }}"})],
                ),
            ],
            "cards.1.inputs.else.0.inputs.v",
            "card 't' runs later",
        ),
        # nor the cards after its control card
        (
            [for_each("l", [card("in", inputs={"v": "{{ steps.after }}"})]), card("after")],
            "cards.0.inputs.cards.0.inputs.v",
            "card 'after' runs later",
        ),
        # a card after a loop does not see inside it
        (
            [for_each("l", [card("in")]), card("after", inputs={"v": "{{ steps.in }}"})],
            "cards.1.inputs.v",
            "card 'in' runs later",
        ),
        # ids are unique across the whole tree
        (
            [card("same"), for_each("l", [if_else("b", [card("same")])])],
            "cards.1.inputs.cards.0.inputs.then.0.id",
            "used by another card",
        ),
        (
            [for_each("l", [card("n", card="nope")])],
            "cards.0.inputs.cards.0.card",
            "no card 'nope'",
        ),
    ],
)
def test_check_flow_walks_nested_cards_with_their_scope(
    cards: list[Any], field: str, words: str
) -> None:
    document = load_document({"name": "x", "cards": cards})
    with pytest.raises(InvalidInput) as raised:
        check_flow(document, lambda ref: True)
    assert raised.value.field == field
    assert words in raised.value.message


def test_check_flow_accepts_what_each_card_may_see() -> None:
    document = load_document(
        {
            "name": "x",
            "cards": [
                card("before"),
                for_each(
                    "l",
                    [
                        card("one", inputs={"v": "{{ steps.before }} {{ loop.item }}"}),
                        if_else(
                            "b",
                            [card("t", inputs={"v": "{{ steps.one }} {{ steps.before }}"})],
                            [card("e", inputs={"v": "{{ steps.one }}"})],
                        ),
                    ],
                ),
                card("after", inputs={"v": "{{ steps.l.output }} {{ steps.before }}"}),
            ],
        }
    )
    check_flow(document, lambda ref: True)
