"""A connection's status, and every change of it, in one place.

``ready``: cards may use it. ``needs_authorization``: a user must authorize it (first
time, a changed grant, a refresh token the provider refused). ``error``: the provider
refused its credentials (a bad client secret); fixing the config makes it ready.

Each function below is one transition, applied to a connection row inside the caller's
transaction, with the message users see as ``last_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from cardflow.credentials.base import AuthType
from cardflow.store.models import Connection, utcnow

# A rejection (connections.rejections) is over: the columns that record it, cleared.
NO_REJECTION: dict[str, None] = {
    "rejected_status_code": None,
    "rejected_at": None,
    "rejected_run_id": None,
    "rejected_flow_id": None,
    "rejected_card_id": None,
}


class ConnectionStatus(StrEnum):
    READY = "ready"
    NEEDS_AUTHORIZATION = "needs_authorization"
    ERROR = "error"


def initial(auth_type: AuthType) -> ConnectionStatus:
    """What a new connection of this auth type starts as."""
    if auth_type.user_authorizes:
        return ConnectionStatus.NEEDS_AUTHORIZATION
    return ConnectionStatus.READY


def config_changed(row: Connection, auth_type: AuthType, changed: Sequence[str] | None) -> bool:
    """The config changed (``changed``: the grant fields that did; None: the auth type
    itself changed). Returns whether tokens the connection holds are now void."""
    if auth_type.user_authorizes and changed is not None and not changed:
        return False
    _credentials_replaced(row)
    if auth_type.user_authorizes:
        row.status = ConnectionStatus.NEEDS_AUTHORIZATION
        row.last_error = (
            f"{', '.join(changed)} changed: authorize this connection again."
            if changed is not None
            else "Authorize this connection."
        )
    else:
        row.status, row.last_error = ConnectionStatus.READY, None
    return True


def token_saved(row: Connection) -> None:
    """A token was fetched and stored: whatever was wrong, the connection works now."""
    if row.status != ConnectionStatus.READY:
        row.status, row.last_error = ConnectionStatus.READY, None


def authorized(row: Connection) -> None:
    """A user authorized the connection: it is ready, and its version moves so every
    process drops the auth it cached."""
    row.status, row.last_error = ConnectionStatus.READY, None
    _credentials_replaced(row)
    row.version += 1
    row.updated_at = utcnow()


def _credentials_replaced(row: Connection) -> None:
    """What the upstream said of the old credentials says nothing of the new ones."""
    for column in NO_REJECTION:
        setattr(row, column, None)


def grant_refused(row: Connection, message: str, *, needs_authorization: bool) -> None:
    """The token endpoint refused the grant: the user must authorize again
    (``needs_authorization``), or the connection's credentials are wrong."""
    if needs_authorization:
        if row.status == ConnectionStatus.NEEDS_AUTHORIZATION and row.last_error:
            # Later refusals of the same dead grant follow from the first cause
            # (a lost rotated token, a changed scope, …): keep saying it.
            return
        row.status = ConnectionStatus.NEEDS_AUTHORIZATION
    else:
        row.status = ConnectionStatus.ERROR
    row.last_error = message
    row.updated_at = utcnow()
