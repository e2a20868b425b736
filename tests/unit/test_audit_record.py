"""What an audit entry keeps of a change: small plain values, cut to a bound; anything
bigger, and every hidden (secret) field, only as changed."""

from __future__ import annotations

from cardflow.audit.actor import LIBRARY, Actor, acting_as, current_actor
from cardflow.audit.record import MAX_VALUE_CHARS, created, diff, field_change


def test_secret_fields_are_said_changed_without_their_values() -> None:
    before = {"config.password": "old-secret", "config.username": "bot"}
    after = {"config.password": "new-secret", "config.username": "bot2"}
    changes = diff(before, after, hidden={"config.password"})
    assert changes == [
        {"field": "config.password", "changed": True},
        {"field": "config.username", "old": "bot", "new": "bot2"},
    ]
    assert "secret" not in repr(changes)
    # an unchanged secret is not mentioned at all
    assert (
        diff({"config.password": "same"}, {"config.password": "same"}, hidden={"config.password"})
        == []
    )
    assert created(
        {"config.password": "x", "name": "n", "empty": ""}, hidden={"config.password"}
    ) == [
        {"field": "config.password", "changed": True},
        {"field": "name", "old": None, "new": "n"},
    ]


def test_values_are_bounded() -> None:
    long = "x" * 5000
    cut = field_change("description", None, long)
    assert len(cut["new"]) == MAX_VALUE_CHARS and cut["new"].endswith("…")
    assert field_change("cards", [], [{"id": "a"}]) == {"field": "cards", "changed": True}
    assert field_change("hosts", [], ["h"] * 21) == {"field": "hosts", "changed": True}
    assert field_change("hosts", [], ["a.example"]) == {
        "field": "hosts",
        "old": [],
        "new": ["a.example"],
    }


def test_acting_as_sets_and_restores_the_actor() -> None:
    assert current_actor.get() == LIBRARY
    with acting_as(Actor("cli", name="ops", address="cli@host")) as actor:
        assert current_actor.get() is actor
        assert actor.as_("web_session", "ses_1").address == "cli@host"
    assert current_actor.get() == LIBRARY
