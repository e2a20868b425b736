"""Flow version history over HTTP, on both databases: every change of a flow's document is
a numbered version (who, when, a note), listed, compared, restored; runs record theirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

import cardflow
from cardflow.store.db import Database
from cardflow.store.models import FlowVersion
from tests.conftest import RunningServer, free_port, serving


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def greet(word: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Greet",
        "trigger": {"type": "manual"},
        "cards": [{"id": "hello", "card": "object.construct", "inputs": {"word": word}}],
        **extra,
    }


def token_name(server: RunningServer) -> str:
    (view,) = [v for v in server.cf.api_tokens.list()]
    return view.name


def test_each_change_of_the_document_is_a_version(server: RunningServer) -> None:
    with api(server) as client:
        made = client.post("/api/v1/flows", params={"note": "first cut"}, json=greet("hi"))
        assert made.status_code == 201, made.text
        flow = made.json()
        assert flow["saved_version"] == 1
        flow_id = flow["id"]
        put = client.put(
            f"/api/v1/flows/{flow_id}", params={"note": "  say hello  "}, json=greet("hello")
        )
        assert put.json()["saved_version"] == 2
        # the same document again: no new version (a version per change)
        same = client.put(f"/api/v1/flows/{flow_id}", json=greet("hello"))
        assert same.json()["saved_version"] == 2
        # disabling changes the document's enabled
        patched = client.patch(
            f"/api/v1/flows/{flow_id}", json={"enabled": False, "note": "paused"}
        )
        assert patched.json()["saved_version"] == 3
        listed = client.get(f"/api/v1/flows/{flow_id}/versions").json()
        assert [v["number"] for v in listed] == [3, 2, 1]
        assert [v["note"] for v in listed] == ["paused", "say hello", "first cut"]
        assert {v["actor"] for v in listed} == {f"token:{token_name(server)} (owner)"}
        first = client.get(f"/api/v1/flows/{flow_id}/versions/1").json()
        assert first["document"]["cards"][0]["inputs"] == {"word": "hi"}
        assert first["document"]["enabled"] is True
        third = client.get(f"/api/v1/flows/{flow_id}/versions/3").json()
        assert third["document"]["enabled"] is False
        # paged: the versions older than 3, one at a time; by name as by id
        page = client.get("/api/v1/flows/Greet/versions", params={"before": 3, "limit": 1})
        assert [v["number"] for v in page.json()] == [2]


def test_import_replacing_and_as_copy_make_versions(server: RunningServer) -> None:
    with api(server) as client:
        flow = client.post("/api/v1/flows", json=greet("hi")).json()
        text_v2 = "name: Greet\ncards:\n  - {id: hello, card: object.construct, inputs: {w: 2}}\n"
        replaced = client.post(
            "/api/v1/flows/import", json={"content": text_v2, "replace": True, "note": "file"}
        )
        assert replaced.status_code == 201, replaced.text
        assert replaced.json()["saved_version"] == 2
        copy = client.post("/api/v1/flows/import", json={"content": text_v2, "as_copy": True})
        assert copy.json()["saved_version"] == 1
        notes = [v["note"] for v in client.get(f"/api/v1/flows/{flow['id']}/versions").json()]
        assert notes == ["file", None]


def test_restore_saves_the_old_document_as_a_new_version(server: RunningServer) -> None:
    with api(server) as client:
        flow_id = client.post("/api/v1/flows", json=greet("hi")).json()["id"]
        client.put(f"/api/v1/flows/{flow_id}", json=greet("hello"))
        restored = client.post(f"/api/v1/flows/{flow_id}/versions/1/restore")
        assert restored.status_code == 200, restored.text
        assert restored.json()["saved_version"] == 3
        assert restored.json()["cards"][0]["inputs"] == {"word": "hi"}
        assert client.get(f"/api/v1/flows/{flow_id}").json()["cards"][0]["inputs"] == {"word": "hi"}
        newest = client.get(f"/api/v1/flows/{flow_id}/versions", params={"limit": 1}).json()
        assert newest[0]["note"] == "Restored from version 1"
        # restoring what the flow already is still records the restore, with a given note
        again = client.post(f"/api/v1/flows/{flow_id}/versions/3/restore", json={"note": "again"})
        assert again.json()["saved_version"] == 4
        assert client.get(f"/api/v1/flows/{flow_id}/versions/4").json()["note"] == "again"


def test_restore_is_checked_as_a_save(server: RunningServer) -> None:
    with api(server) as client:
        connection = client.post(
            "/api/v1/connections", json={"name": "gone soon", "auth_type": "none"}
        )
        assert connection.status_code == 201, connection.text
        uses = greet("hi")
        uses["cards"][0] = {
            "id": "call",
            "card": "api_connector.get",
            "connection": "gone soon",
            "inputs": {"url": "http://127.0.0.1:9/"},
        }
        flow_id = client.post("/api/v1/flows", json=uses).json()["id"]
        client.put(f"/api/v1/flows/{flow_id}", json=greet("hello"))
        assert client.delete(f"/api/v1/connections/{connection.json()['id']}").is_success
        refused = client.post(f"/api/v1/flows/{flow_id}/versions/1/restore")
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == "cards.0.connection"
        # a name another flow took meanwhile
        client.put(f"/api/v1/flows/{flow_id}", json=greet("x", name="Renamed"))
        client.post("/api/v1/flows", json=greet("other"))  # takes the name "Greet"
        clash = client.post(f"/api/v1/flows/{flow_id}/versions/2/restore")
        assert clash.status_code == 409
        assert clash.json()["error"]["field"] == "name"
        # nothing was saved by the refused restores
        assert client.get(f"/api/v1/flows/{flow_id}").json()["saved_version"] == 3


def test_diff_side_by_side_and_unified(server: RunningServer) -> None:
    with api(server) as client:
        flow_id = client.post("/api/v1/flows", json=greet("hi")).json()["id"]
        client.put(f"/api/v1/flows/{flow_id}", json=greet("hello", description="Says it"))
        found = client.get(f"/api/v1/flows/{flow_id}/versions/1/diff/2").json()
        assert (found["from_version"], found["to_version"], found["changed"]) == (1, 2, True)
        changed = [row for row in found["rows"] if row["kind"] == "changed"]
        assert [(row["left"].strip(), row["right"].strip()) for row in changed] == [
            ("word: hi", "word: hello")
        ]
        added = [row["right"] for row in found["rows"] if row["kind"] == "added"]
        assert added == ["description: Says it"]
        assert all(row["left"] == row["right"] for row in found["rows"] if row["kind"] == "same")
        assert "-    word: hi\n" in found["unified"]
        assert "+    word: hello\n" in found["unified"]
        same = client.get(f"/api/v1/flows/{flow_id}/versions/2/diff/2").json()
        assert same["changed"] is False and same["unified"] == ""
        as_json = client.get(
            f"/api/v1/flows/{flow_id}/versions/1/diff/2", params={"format": "json"}
        ).json()
        assert '"word": "hello"' in as_json["unified"]


def test_unknown_flows_versions_and_bad_input(server: RunningServer) -> None:
    with api(server) as client:
        flow_id = client.post("/api/v1/flows", json=greet("hi")).json()["id"]
        missing_flow = client.get("/api/v1/flows/nope/versions")
        assert missing_flow.status_code == 404
        assert missing_flow.json()["error"]["type"] == "flow_not_found"
        for path in ("versions/9", "versions/9/diff/1", "versions/1/diff/9"):
            answer = client.get(f"/api/v1/flows/{flow_id}/{path}")
            assert answer.status_code == 404, path
            assert answer.json()["error"]["type"] == "flow_version_not_found"
        assert client.post(f"/api/v1/flows/{flow_id}/versions/9/restore").status_code == 404
        for path, field in (
            ("versions/0", "number"),
            ("versions/x", "number"),
            ("versions?limit=0", "limit"),
            ("versions?limit=501", "limit"),
            ("versions/1/diff/2?format=xml", "format"),
        ):
            answer = client.get(f"/api/v1/flows/{flow_id}/{path}")
            assert answer.status_code == 422, path
            assert field in answer.json()["error"]["field"], (path, answer.text)
        long_note = "n" * 501
        for answer in (
            client.put(f"/api/v1/flows/{flow_id}", params={"note": long_note}, json=greet("a")),
            client.post(f"/api/v1/flows/{flow_id}/versions/1/restore", json={"note": long_note}),
            client.patch(f"/api/v1/flows/{flow_id}", json={"enabled": False, "note": long_note}),
        ):
            assert answer.status_code == 422, answer.text
            assert "note" in answer.json()["error"]["field"]
        assert client.get(f"/api/v1/flows/{flow_id}").json()["saved_version"] == 1
        assert client.get(f"/api/v1/flows/{flow_id}/versions").json()[0]["number"] == 1


@pytest.fixture
def bounded(settings_kwargs: dict[str, object]) -> Iterator[RunningServer]:
    with (
        cardflow.open(**settings_kwargs, max_flow_versions=3) as instance,
        serving(instance, free_port()) as running,
    ):
        yield running


def test_history_is_bounded_oldest_dropped(bounded: RunningServer) -> None:
    with api(bounded) as client:
        flow_id = client.post("/api/v1/flows", json=greet("v1")).json()["id"]
        for number in range(2, 6):
            client.put(f"/api/v1/flows/{flow_id}", json=greet(f"v{number}"))
        listed = client.get(f"/api/v1/flows/{flow_id}/versions").json()
        assert [v["number"] for v in listed] == [5, 4, 3]
        assert client.get(f"/api/v1/flows/{flow_id}/versions/2").status_code == 404
        kept = client.get(f"/api/v1/flows/{flow_id}/versions/3").json()
        assert kept["document"]["cards"][0]["inputs"] == {"word": "v3"}
    with bounded.cf.db.session() as session:
        numbers = session.scalars(select(FlowVersion.number).where(FlowVersion.flow_id == flow_id))
        assert sorted(numbers) == [3, 4, 5]
    # deleting the flow deletes its history
    with api(bounded) as client:
        assert client.delete(f"/api/v1/flows/{flow_id}").status_code == 204
    with bounded.cf.db.session() as session:
        assert session.scalars(select(FlowVersion)).all() == []


def test_runs_record_the_version_they_ran(server: RunningServer) -> None:
    with api(server) as client:
        flow_id = client.post("/api/v1/flows", json=greet("hi")).json()["id"]
        first = client.post(f"/api/v1/flows/{flow_id}/runs", json={}).json()
        assert first["status"] == "succeeded", first
        assert first["flow_version"] == 1
        client.put(f"/api/v1/flows/{flow_id}", json=greet("hello"))
        second = client.post(f"/api/v1/flows/{flow_id}/runs", json={}).json()
        assert second["flow_version"] == 2
        assert client.get(f"/api/v1/runs/{first['id']}").json()["flow_version"] == 1
        listed = client.get("/api/v1/runs", params={"flow_id": flow_id}).json()
        assert [run["flow_version"] for run in listed] == [2, 1]


def test_an_endpoint_flow_keeps_its_client_token_out_of_versions(server: RunningServer) -> None:
    document = {
        "name": "Hook",
        "trigger": {"type": "api_endpoint", "alias": "hook", "security": "client_token"},
        "cards": [{"id": "ok", "card": "api_connector.close", "inputs": {"status_code": 200}}],
    }
    with api(server) as client:
        flow = client.post("/api/v1/flows", json=document).json()
        tokens = [flow["client_token"]]
        # a new token is no new version of the document
        regenerated = client.post(f"/api/v1/flows/{flow['id']}/client-token").json()
        tokens.append(regenerated["client_token"])
        assert regenerated["saved_version"] == 1
        client.put(f"/api/v1/flows/{flow['id']}", json={**document, "description": "d"})
        answers = [
            client.get(f"/api/v1/flows/{flow['id']}/versions").text,
            client.get(f"/api/v1/flows/{flow['id']}/versions/1").text,
            client.get(f"/api/v1/flows/{flow['id']}/versions/2").text,
            client.get(f"/api/v1/flows/{flow['id']}/versions/1/diff/2").text,
        ]
    with server.cf.db.session() as session:
        stored = [repr(row.document) for row in session.scalars(select(FlowVersion))]
    assert len(stored) == 2
    for token in tokens:
        assert token and token.startswith("ct_")
        for text_ in [*answers, *stored]:
            assert token not in text_


def test_migration_makes_existing_flows_version_1(tmp_path: Path) -> None:
    """A database from before version history: each flow's document becomes its version 1
    (SQLite; the migration's SQL is the same on PostgreSQL, run there by every test)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    config = Database._alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
        connection.execute(
            text(
                "INSERT INTO flows (id, name, enabled, document, version, created_at, "
                "updated_at) VALUES ('flw_old', 'Old', 1, :doc, 7, '2026-01-01 00:00:00', "
                "'2026-01-02 00:00:00')"
            ),
            {"doc": '{"name": "Old", "cards": []}'},
        )
        command.upgrade(config, "head")
        connection.commit()
        rows = connection.execute(
            text("SELECT flow_id, number, document, actor FROM flow_versions")
        ).all()
        saved = connection.execute(text("SELECT saved_version, version FROM flows")).one()
    engine.dispose()
    assert [(r.flow_id, r.number, r.actor) for r in rows] == [("flw_old", 1, "migration")]
    assert '"Old"' in rows[0].document
    assert tuple(saved) == (1, 7)
