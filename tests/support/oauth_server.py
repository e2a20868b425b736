"""A real OAuth 2.0 authorization server (Authlib on Flask) on 127.0.0.1 for integration tests.

`OAuthServer` serves, from werkzeug's threaded server in a daemon thread:

- ``POST /oauth/token``: the token endpoint, driven by Authlib's `AuthorizationServer` with the
  client-credentials grant (client_secret_basic and client_secret_post);
- ``GET /api/me``: a resource protected by Authlib's `ResourceProtector` (RFC 6750 bearer).

Clients and tokens live in `MemoryStore`, so more grants (authorization code with PKCE,
refresh-token rotation) can be registered later against the same store.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import (
    ClientCredentialsGrant,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from flask import Flask, Response, jsonify
from werkzeug.serving import BaseWSGIServer, make_server

HOST = "127.0.0.1"
TOKEN_PATH = "/oauth/token"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered OAuth client, as Authlib's `ClientMixin` expects it."""

    client_id: str
    client_secret: str
    token_endpoint_auth_method: str = "client_secret_basic"
    scope: str = ""
    grant_types: tuple[str, ...] = ("client_credentials",)
    redirect_uris: tuple[str, ...] = ()
    response_types: tuple[str, ...] = ()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # No requested scope means the client's whole registered scope (RFC 6749 section 3.3).
        if not scope:
            return self.scope
        allowed = set(scope_to_list(self.scope))
        return str(list_to_scope([s for s in scope_to_list(scope) if s in allowed]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.token_endpoint_auth_method
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    """An issued access token (and, for later grants, its refresh token)."""

    access_token: str
    client: Client
    scope: str
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    refresh_token: str | None = None
    user_id: str | None = None
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return bool(client.get_client_id() == self.client.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        # expires_in == 0 means the token never expires (Authlib then omits it from the response).
        return self.expires_in > 0 and time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str | None:
        return self.user_id

    def get_client(self) -> Client:
        return self.client


class MemoryStore:
    """Thread-safe in-memory clients and tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._tokens: dict[str, Token] = {}  # by access token, in the order issued

    def add_client(self, client: Client) -> Client:
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def get_client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    def save_token(self, token: Token) -> None:
        with self._lock:
            self._tokens[token.access_token] = token

    def get_token(self, access_token: str) -> Token | None:
        with self._lock:
            return self._tokens.get(access_token)

    def tokens(self) -> list[Token]:
        with self._lock:
            return list(self._tokens.values())

    def revoke_all(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _BearerTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.store.get_token(token_string)


@dataclass(frozen=True)
class _Fault:
    status: int
    error: str
    retry_after: int | None


class OAuthServer:
    """Authlib authorization server + protected resource on 127.0.0.1 (ephemeral port)."""

    def __init__(self, *, expires_in: int = 3600) -> None:
        #: Lifetime in seconds of tokens issued from now on (0: no expiry). Mutable at runtime.
        self.expires_in = expires_in
        self.store = MemoryStore()
        self.port = 0
        self._lock = threading.Lock()
        self._token_requests = 0
        self._faults: deque[_Fault] = deque()
        self._delays: deque[float] = deque()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

        self.app = Flask(__name__)
        self.authorization = AuthorizationServer(
            self.app, query_client=self.store.get_client, save_token=self._save_token
        )
        self.authorization.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=self._new_token_string,
                refresh_token_generator=self._new_token_string,
                expires_generator=self._token_lifetime,
            ),
        )
        self.authorization.register_grant(_ClientCredentialsGrant)
        self.resource_protector = ResourceProtector()
        self.resource_protector.register_token_validator(_BearerTokenValidator(self.store))
        self.app.add_url_rule(TOKEN_PATH, "token", self._token_endpoint, methods=["POST"])
        self.app.add_url_rule("/api/me", "me", self._me, methods=["GET"])

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("OAuthServer is not running")
        return f"http://{HOST}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("OAuthServer already started")
        self._stopping.clear()
        self._server = make_server(HOST, 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oauth-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes requests sleeping because of hang_next()
        server.shutdown()
        thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- set-up and inspection ---------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        token_endpoint_auth_method: str = "client_secret_basic",
        scope: str = "",
        *,
        grant_types: tuple[str, ...] = ("client_credentials",),
        redirect_uris: tuple[str, ...] = (),
    ) -> Client:
        return self.store.add_client(
            Client(
                client_id=client_id,
                client_secret=client_secret,
                token_endpoint_auth_method=token_endpoint_auth_method,
                scope=scope,
                grant_types=grant_types,
                redirect_uris=redirect_uris,
            )
        )

    @property
    def token_requests(self) -> int:
        """POSTs received by the token endpoint, failed and injected-failure ones included."""
        with self._lock:
            return self._token_requests

    @property
    def issued_tokens(self) -> list[str]:
        """Access tokens issued so far, oldest first."""
        return [token.access_token for token in self.store.tokens()]

    def revoke_all(self) -> None:
        self.store.revoke_all()

    def fail_next(
        self,
        n: int,
        status: int = 500,
        *,
        error: str = "server_error",
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `n` token requests with `status` and an OAuth error body."""
        with self._lock:
            self._faults.extend([_Fault(status, error, retry_after)] * n)

    def hang_next(self, n: int, seconds: float) -> None:
        """Make the next `n` token requests sleep `seconds` before being handled."""
        with self._lock:
            self._delays.extend([seconds] * n)

    # -- Authlib hooks -----------------------------------------------------------------------

    def _new_token_string(self, **_: Any) -> str:
        return secrets.token_urlsafe(32)

    def _token_lifetime(self, client: Client, grant_type: str) -> int:
        return self.expires_in

    def _save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.store.save_token(
            Token(
                access_token=token["access_token"],
                client=request.client,
                scope=token.get("scope", ""),
                expires_in=int(token.get("expires_in", 0)),
                refresh_token=token.get("refresh_token"),
                user_id=getattr(request.user, "user_id", None),
            )
        )

    # -- views -------------------------------------------------------------------------------

    def _token_endpoint(self) -> Response:
        with self._lock:
            self._token_requests += 1
            delay = self._delays.popleft() if self._delays else 0.0
            fault = self._faults.popleft() if self._faults else None
        if delay:
            self._stopping.wait(delay)
        if fault is not None:
            response = jsonify(error=fault.error, error_description="injected by fail_next()")
            response.status_code = fault.status
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
            return response
        response = self.authorization.create_token_response()
        assert isinstance(response, Response)
        return response

    def _me(self) -> Response:
        with self.resource_protector.acquire() as token:
            return jsonify(
                client_id=token.client.client_id,
                scope=token.scope,
                token_suffix=token.access_token[-4:],
            )
