"""The connection service on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cardflow.app import Cardflow
from cardflow.errors import Conflict, ConnectionInUse, ConnectionNotFound, InvalidInput


def test_create_read_update_delete(cf: Cardflow) -> None:
    view = cf.connections.create(
        "JIRA - Basic - bot", "basic", {"username": "bot", "password": "pw"}
    )
    assert view.id.startswith("con_")
    assert cf.connections.get(view.id) == cf.connections.get("JIRA - Basic - bot")
    assert [c.name for c in cf.connections.list()] == ["JIRA - Basic - bot"]
    renamed = cf.connections.update(view.id, name="JIRA - Basic - robot")
    assert renamed.name == "JIRA - Basic - robot"
    assert renamed.updated_at >= view.updated_at
    cf.connections.delete("JIRA - Basic - robot")
    with pytest.raises(ConnectionNotFound):
        cf.connections.get(view.id)


def test_update_keeps_omitted_secrets_and_changes_given_ones(cf: Cardflow) -> None:
    cf.connections.create("k", "custom", {"header_name": "X-Key", "header_value": "one"})
    cf.connections.update("k", config={"header_name": "X-Other"})
    loaded = cf.connections.load("k").config
    assert (loaded.header_name, loaded.header_value) == ("X-Other", "one")  # type: ignore[attr-defined]
    cf.connections.update("k", config={"header_value": "two"})
    assert cf.connections.load("k").config.header_value == "two"  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput) as info:
        cf.connections.update("k", config={"header_value": ""})
    assert info.value.field == "config.header_value"
    assert cf.connections.load("k").config.header_value == "two"  # type: ignore[attr-defined]


def test_changing_auth_type_needs_the_new_types_config(cf: Cardflow) -> None:
    cf.connections.create("x", "basic", {"username": "u", "password": "p"})
    with pytest.raises(InvalidInput) as info:
        cf.connections.update("x", auth_type="custom")
    assert info.value.field == "config.header_name"
    view = cf.connections.update(
        "x", auth_type="custom", config={"header_name": "api_key", "header_value": "v"}
    )
    assert view.auth_type == "custom"
    assert view.config == {"header_name": "api_key", "header_value": {"set": True}}


def test_duplicate_names_conflict(cf: Cardflow) -> None:
    cf.connections.create("same", "none", {})
    with pytest.raises(Conflict) as info:
        cf.connections.create("same", "none", {})
    assert info.value.field == "name"
    # a failed create leaves nothing behind
    assert [c.name for c in cf.connections.list()] == ["same"]


def test_used_by_lists_the_flows_and_delete_is_refused_while_any_does(cf: Cardflow) -> None:
    view = cf.connections.create("used", "none", {})
    cf.connections.create("idle", "none", {})

    def flow(name: str, ref: str) -> str:
        step = {"id": "g", "card": "api_connector.get", "connection": ref}
        created = cf.flows.create(
            {
                "name": name,
                "trigger": {"type": "manual"},
                "cards": [{**step, "inputs": {"url": "http://127.0.0.1:9/x"}}],
            }
        )
        return created.id

    by_name = flow("Offboard user", "used")
    by_id = flow("Audit", view.id)
    used = cf.connections.get("used")
    assert [(use.name, use.id) for use in used.used_by] == [
        ("Audit", by_id),
        ("Offboard user", by_name),
    ]
    listed = {c.name: [use.name for use in c.used_by] for c in cf.connections.list()}
    assert listed == {"idle": [], "used": ["Audit", "Offboard user"]}
    with pytest.raises(ConnectionInUse) as info:
        cf.connections.delete("used")
    assert "flow 'Audit', flow 'Offboard user'" in info.value.message
    assert cf.connections.get("used").id == view.id
    cf.flows.delete(by_name)
    cf.flows.delete(by_id)
    cf.connections.delete("used")
    assert [c.name for c in cf.connections.list()] == ["idle"]


def test_whitespace_and_control_characters_in_names(cf: Cardflow) -> None:
    assert cf.connections.create("  padded  ", "none", {}).name == "padded"
    with pytest.raises(InvalidInput):
        cf.connections.create("bad\nname", "none", {})
