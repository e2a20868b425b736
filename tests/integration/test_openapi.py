"""/openapi.json names a schema for every body, and those schemas are what the API answers
(so a client generated from it gets real types)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from cardflow.credentials.registry import AUTH_TYPES, auth_type_info
from tests.conftest import RunningServer

JSON = "application/json"
REF = "#/components/schemas/"


def spec_of(server: RunningServer) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()
    return data


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def named(schema: dict[str, Any], components: dict[str, Any]) -> str | None:
    """The schema's name when it is a $ref into components/schemas (or a list of such,
    or such or null); else None."""
    if "$ref" in schema:
        ref = schema["$ref"]
        name = ref.removeprefix(REF)
        return name if ref.startswith(REF) and name in components else None
    if schema.get("type") == "array":
        inner = named(schema.get("items", {}), components)
        return f"list[{inner}]" if inner else None
    options = [option for option in schema.get("anyOf", ()) if option != {"type": "null"}]
    if len(options) == 1 and len(schema["anyOf"]) == 2:
        inner = named(options[0], components)
        return f"{inner} | None" if inner else None
    return None


def test_every_request_and_response_body_has_a_named_schema(server: RunningServer) -> None:
    spec = spec_of(server)
    components = spec["components"]["schemas"]
    unnamed: list[str] = []
    for where, operation in operations(spec):
        bodies = []
        if "requestBody" in operation:
            content = operation["requestBody"]["content"]
            # /invoke takes whatever its flow reads (*/*): no JSON body of cardflow's own
            assert JSON in content or where.endswith("/invoke/{alias}"), where
            bodies.append(("request", content))
        for status, response in operation["responses"].items():
            if status.startswith("2") or status.startswith("4"):
                bodies.append((status, response.get("content", {})))
        for what, content in bodies:
            if JSON in content and named(content[JSON]["schema"], components) is None:
                unnamed.append(f"{where} {what}: {content[JSON]['schema']}")
    assert unnamed == []


def test_every_answer_with_a_body_says_what_it_is(server: RunningServer) -> None:
    spec = spec_of(server)
    components = spec["components"]["schemas"]
    for where, operation in operations(spec):
        answers = operation["responses"]
        success = [status for status in answers if status[0] in "23"]
        assert success, where
        for status in success:
            if status == "204" or status.startswith("3"):
                assert "content" not in answers[status], f"{where} {status}"
            else:
                assert answers[status].get("content"), f"{where} {status}"
        for status, answer in answers.items():
            if status.startswith("4"):  # cardflow's error shape, not FastAPI's own 422 one
                assert named(answer["content"][JSON]["schema"], components) == "ErrorResponse"
    assert "HTTPValidationError" not in components


def properties(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"][name]["properties"]
    return found


def check_shape(spec: dict[str, Any], name: str, answered: dict[str, Any]) -> None:
    """The schema lists exactly the keys the API answered with, each of them required."""
    schema = spec["components"]["schemas"][name]
    assert sorted(schema["properties"]) == sorted(answered), name
    assert sorted(schema.get("required", ())) == sorted(answered), name


def test_the_schemas_are_what_the_api_answers(server: RunningServer) -> None:
    spec = spec_of(server)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
        connection = client.post(
            "/api/v1/connections",
            json={
                "name": "svc",
                "auth_type": "basic",
                "config": {"username": "u", "password": "p"},
                # nothing listens there: the test ends without an answer (every key set)
                "test_request": {"url": "http://127.0.0.1:9/me"},
            },
        ).json()
        probed = client.post(f"/api/v1/connections/{connection['id']}/test").json()
        flow = client.post(
            "/api/v1/flows",
            json={
                "name": "shapes",
                "trigger": {"type": "api_endpoint", "alias": "shapes"},
                "save_data": True,
                "cards": [
                    {"id": "made", "card": "object.construct", "inputs": {"a": 1}},
                    {"id": "broken", "card": "json.parse", "inputs": {"text": "{"}},
                ],
            },
        ).json()
        run = client.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {}}).json()
        listed = client.get("/api/v1/runs").json()
        card = client.get("/api/v1/cards").json()[0]
        auth_type = client.get("/api/v1/auth-types").json()[0]
        tested = client.post("/api/v1/cards/object.construct/test", json={"inputs": {}}).json()
        missing = client.get("/api/v1/flows/nope").json()
        failed = httpx.post(f"{server.url}/invoke/shapes?clientToken={flow['client_token']}")

    check_shape(spec, "ConnectionView", connection)
    check_shape(spec, "ConnectionTestRequest", connection["test_request"])
    check_shape(spec, "ConnectionTestResult", probed)
    check_shape(spec, "FlowView", flow)
    check_shape(spec, "RunView", run)
    check_shape(spec, "RunView", listed[0])
    check_shape(spec, "RunCardView", run["cards"][0])
    check_shape(spec, "CardSpecView", card)
    check_shape(spec, "AuthTypeView", auth_type)
    check_shape(spec, "AuthTypeField", auth_type["fields"][0])
    # (the answer above passed through its schema: what the registry says must fit it)
    for info in map(auth_type_info, AUTH_TYPES.values()):
        assert sorted(properties(spec, "AuthTypeView")) == sorted(info)
        for field in info["fields"]:
            assert sorted(properties(spec, "AuthTypeField")) == sorted(field)
    check_shape(spec, "ErrorResponse", missing)
    # curl: request cards only (Copy as cURL); object.construct answers without it
    assert sorted(properties(spec, "CardTestResult")) == sorted([*tested, "curl"])
    assert failed.status_code == 500
    check_shape(spec, "InvokeFailed", failed.json())

    # the run's error names the card that failed, then says what went wrong
    assert list(run["error"])[:3] == ["card", "type", "message"]
    assert set(properties(spec, "RunError")) == {"card", "type", "message", "field"}
    assert spec["components"]["schemas"]["RunError"]["required"] == ["type", "message"]

    flow_view = properties(spec, "FlowView")
    assert flow_view["trigger"] == {"$ref": REF + "Trigger"}
    assert flow_view["cards"]["items"] == {"$ref": REF + "CardStep"}
    assert flow_view["created_at"]["format"] == "date-time"
    run_view = properties(spec, "RunView")
    assert run_view["cards"]["items"] == {"$ref": REF + "RunCardView"}
    assert run_view["status"]["enum"] == ["queued", "running", "succeeded", "failed"]
    assert run_view["error"]["anyOf"][0] == {"$ref": REF + "RunError"}
    assert properties(spec, "RunCardView")["error"]["anyOf"][0] == {"$ref": REF + "ErrorDetail"}
    assert properties(spec, "ConnectionView")["status"] == {"$ref": REF + "ConnectionStatus"}


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for child in value.values() for ref in _refs(child)]
    if isinstance(value, list):
        return [ref for child in value for ref in _refs(child)]
    return []


def test_docs_describe_each_auth_types_config_and_each_cards_inputs(
    server: RunningServer,
) -> None:
    from cardflow.cards.registry import CARDS
    from cardflow.credentials.registry import AUTH_TYPES

    spec = spec_of(server)
    schemas = spec["components"]["schemas"]
    config = schemas["ConnectionCreate"]["properties"]["config"]
    assert [choice["$ref"] for choice in config["anyOf"]] == [
        f"#/components/schemas/Config.{name}" for name in AUTH_TYPES
    ]
    basic = schemas["Config.basic"]
    assert basic["properties"]["password"]["writeOnly"] is True
    assert basic["properties"]["password"]["format"] == "password"
    assert "username" in basic["required"]
    update = schemas["ConnectionUpdate"]["properties"]["config"]
    assert {"type": "null"} in update["anyOf"]
    inputs = schemas["CardStep"]["properties"]["inputs"]
    assert [choice["$ref"] for choice in inputs["anyOf"]] == [
        f"#/components/schemas/Inputs.{card}" for card in CARDS
    ]
    close = schemas["Inputs.api_connector.close"]["properties"]
    assert set(close) >= {"status_code", "headers", "body"}
    # every reference in the document points at a schema it holds
    for ref in _refs(spec):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
