"""All cards by id."""

from __future__ import annotations

from cardflow.cards import api_connector
from cardflow.cards.base import CardSpec
from cardflow.errors import CardNotFound


def _all() -> dict[str, CardSpec]:
    from cardflow.flows import control  # control cards drive the flow engine

    try:
        from cardflow.cards import data

        data_cards: tuple[CardSpec, ...] = data.CARDS
    except ImportError:  # pragma: no cover - being written
        data_cards = ()
    specs = (*api_connector.CARDS, *control.CARDS, *data_cards)
    return {spec.id: spec for spec in specs}


CARDS: dict[str, CardSpec] = _all()


def get_card(card_id: str) -> CardSpec:
    try:
        return CARDS[card_id]
    except KeyError:
        raise CardNotFound(
            f"There is no card {card_id!r}. Cards: {', '.join(sorted(CARDS))}.", field="card_id"
        ) from None
