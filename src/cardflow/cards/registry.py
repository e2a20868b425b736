"""All cards by id."""

from __future__ import annotations

from cardflow.cards import api_connector, control, data
from cardflow.cards.base import CardSpec
from cardflow.errors import CardNotFound

# Control cards (Return, Close, If/Else, For Each) drive the flow engine through the
# FlowControl their context carries; they need nothing from the engine itself.
CARDS: dict[str, CardSpec] = {
    spec.id: spec for spec in (*api_connector.CARDS, *control.CARDS, *data.CARDS)
}


def unknown_card(card_id: str) -> str:
    """What the builder, the API and the CLI all say of a card id that is none of these."""
    return f"There is no card {card_id!r}; the cards are {', '.join(sorted(CARDS))}."


def get_card(card_id: str) -> CardSpec:
    try:
        return CARDS[card_id]
    except KeyError:
        raise CardNotFound(unknown_card(card_id), field="card_id") from None
