"""Auth types build themselves; a connection's status changes only through connections.status."""

from __future__ import annotations

import ast
import pathlib
from datetime import UTC, datetime
from typing import Any

import pytest

from cardflow.connections import status
from cardflow.connections.status import ConnectionStatus
from cardflow.credentials.base import AuthSetup, ConnectionAuth
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.net.policy import NetworkPolicy
from cardflow.net.transport import HttpTransport
from cardflow.store.models import Connection

SRC = pathlib.Path(__file__).parents[2] / "src" / "cardflow"

CONFIGS: dict[str, dict[str, Any]] = {
    "basic": {"username": "bot", "password": "pw"},
    "custom": {"header_name": "X-Api-Key", "header_value": "k"},
    "bearer": {"token": "t"},
    "query": {"param_name": "api_key", "param_value": "k"},
    "digest": {"username": "bot", "password": "pw"},
    "oauth": {
        "authorize_url": "https://id.example.com/authorize",
        "token_url": "https://id.example.com/token",
        "client_id": "c",
        "client_secret": "s",
    },
    "client_credentials": {
        "token_url": "https://id.example.com/token",
        "client_id": "c",
        "client_secret": "s",
    },
    "none": {},
}


def test_every_auth_type_is_tested_here() -> None:
    assert set(AUTH_TYPES) == set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_auth_type_builds_its_own_auth(name: str) -> None:
    auth_type = AUTH_TYPES[name]
    config = auth_type.config.model_validate(CONFIGS[name])
    grants: list[object] = []

    def token_manager(grant: object) -> Any:
        grants.append(grant)
        return object()  # only held by the auth, not used here

    setup = AuthSetup(
        transport=HttpTransport(NetworkPolicy((), ()), max_response_bytes=1024),
        timeout=5.0,
        token_manager=token_manager,
    )
    auth = auth_type.build_auth(config, setup)
    assert isinstance(auth, ConnectionAuth)
    # Token-using types get a token manager (one grant each); the others never ask.
    assert len(grants) == (1 if auth_type.uses_tokens else 0)
    assert isinstance(auth, BearerTokenAuth) == auth_type.uses_tokens
    with pytest.raises(TypeError):
        other = next(t for t in AUTH_TYPES.values() if t.config is not auth_type.config)
        auth_type.build_auth(other.config.model_validate(CONFIGS[other.name]), setup)


def test_only_the_authorization_code_type_needs_a_user_to_authorize() -> None:
    assert [t.name for t in AUTH_TYPES.values() if t.user_authorizes] == ["oauth"]
    assert status.initial(AUTH_TYPES["oauth"]) is ConnectionStatus.NEEDS_AUTHORIZATION
    assert status.initial(AUTH_TYPES["basic"]) is ConnectionStatus.READY
    assert set(AUTH_TYPES["oauth"].grant_fields) <= set(AUTH_TYPES["oauth"].config.model_fields)


def _row(state: ConnectionStatus, last_error: str | None = None) -> Connection:
    return Connection(
        id="con_1", name="c", auth_type="oauth", status=state, version=3, last_error=last_error
    )


def test_config_changes() -> None:
    oauth, basic = AUTH_TYPES["oauth"], AUTH_TYPES["basic"]
    row = _row(ConnectionStatus.READY)
    assert status.config_changed(row, oauth, []) is False  # no grant field changed
    assert row.status == ConnectionStatus.READY and row.last_error is None
    assert status.config_changed(row, oauth, ["scope"]) is True
    assert row.status == ConnectionStatus.NEEDS_AUTHORIZATION
    assert row.last_error == "scope changed: authorize this connection again."
    assert status.config_changed(row, oauth, None) is True  # a new auth type
    assert row.last_error == "Authorize this connection."
    row = _row(ConnectionStatus.ERROR, "invalid_client")
    assert status.config_changed(row, basic, None) is True
    assert (row.status, row.last_error) == (ConnectionStatus.READY, None)


def test_token_and_grant_transitions() -> None:
    row = _row(ConnectionStatus.ERROR, "invalid_client")
    status.token_saved(row)
    assert (row.status, row.last_error, row.version) == (ConnectionStatus.READY, None, 3)
    status.grant_refused(row, "invalid_grant: a lost rotated token", needs_authorization=True)
    assert row.status == ConnectionStatus.NEEDS_AUTHORIZATION
    # A later refusal of the same dead grant keeps the first cause.
    status.grant_refused(row, "invalid_grant", needs_authorization=True)
    assert row.last_error == "invalid_grant: a lost rotated token"
    status.grant_refused(row, "invalid_client", needs_authorization=False)
    assert (row.status, row.last_error) == (ConnectionStatus.ERROR, "invalid_client")
    status.authorized(row)
    assert (row.status, row.last_error, row.version) == (ConnectionStatus.READY, None, 4)


def _rejected(row: Connection) -> Connection:
    row.rejected_status_code, row.rejected_at = 401, datetime(2026, 12, 2, 10, 42, tzinfo=UTC)
    row.rejected_flow_id, row.rejected_card_id, row.rejected_run_id = "flw_1", "get", "run_1"
    return row


def _rejection(row: Connection) -> tuple[object, ...]:
    return tuple(getattr(row, column) for column in status.NO_REJECTION)


def test_new_credentials_end_a_recorded_rejection_other_changes_do_not() -> None:
    oauth, basic = AUTH_TYPES["oauth"], AUTH_TYPES["basic"]
    row = _rejected(_row(ConnectionStatus.READY))
    status.config_changed(row, oauth, [])  # pkce toggled: the same credentials
    assert _rejection(row)[0] == 401
    status.token_saved(row)  # a token fetched: not yet used
    assert _rejection(row)[0] == 401
    status.config_changed(row, oauth, ["client_secret"])
    assert _rejection(row) == (None,) * 5
    row = _rejected(_row(ConnectionStatus.READY))
    status.config_changed(row, basic, None)
    assert _rejection(row) == (None,) * 5
    row = _rejected(_row(ConnectionStatus.READY))
    status.authorized(row)
    assert _rejection(row) == (None,) * 5


def _is_connection_status(value: ast.expr) -> bool:
    """A status string literal, or a ConnectionStatus member."""
    if isinstance(value, ast.Constant):
        return value.value in {member.value for member in ConnectionStatus}
    return "ConnectionStatus" in ast.dump(value)


def test_status_is_written_only_in_connections_status() -> None:
    """No other module sets a connection status (as a literal or a ConnectionStatus)."""
    writers = []
    for path in SRC.rglob("*.py"):
        if path.name == "status.py" and path.parent.name == "connections":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                pairs = (
                    zip(target.elts, node.value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(target, node.value)]
                )
                for element, value in pairs:
                    if (
                        isinstance(element, ast.Attribute)
                        and element.attr == "status"
                        and _is_connection_status(value)
                    ):
                        writers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert writers == []
