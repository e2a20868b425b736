"""A real OAuth 2.0 authorization server (Authlib on Flask) on 127.0.0.1 for integration tests.

`OAuthServer` serves, from werkzeug's threaded server in a daemon thread:

- ``POST /oauth/token``: the token endpoint, driven by Authlib's `AuthorizationServer` with the
  client-credentials, authorization-code (PKCE required by default, S256 or plain) and
  refresh-token (rotating) grants; client_secret_basic or client_secret_post, per client;
- ``GET|POST /oauth/authorize``: the authorization endpoint. Without a provider session it
  redirects to ``/login?next=...``; signed in, GET shows a consent form and POST ``confirm=yes``
  redirects to the client's redirect_uri with ``code`` and ``state`` (``confirm=no``:
  ``error=access_denied``);
- ``GET|POST /login``: a username/password form that sets the provider's session cookie;
- ``GET /api/me``: a resource protected by Authlib's `ResourceProtector` (RFC 6750 bearer);
- ``POST /oauth/revoke``: Authlib's RFC 7009 `RevocationEndpoint` (a refresh token revoked
  ends its access token too); ``fail_revocations`` makes it answer an error instead.

Clients authenticate with client_secret_basic, client_secret_post or private_key_jwt (RFC
7523 §2.2, Authlib's `JWTBearerClientAssertion`: the assertion's signature is checked with
the JWK registered for the client, its iss/sub/aud/exp, and its ``jti`` is single-use).

It is strict the way a real provider is: redirect URIs match exactly, codes are single-use and
short-lived and tied to their client, redirect_uri and PKCE challenge, each refresh token works
once (a refresh returns a new one) and only for its client. `tests.support.provider_login`
drives the browser side (login and consent) from tests.

Two knobs model what real providers do around rotation: ``rotation_grace`` keeps a rotated
refresh token usable for a few more seconds (Okta's grace period; 0, the default, is strict
rotation), and ``answer_delay`` makes the token endpoint sleep after it has issued (and, for a
refresh, rotated) before it answers — the window in which a client that dies loses the answer.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientCredentialsGrant,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from cryptography import x509
from flask import Flask, Response, jsonify, redirect, request, session
from joserfc.jwk import KeySet, RSAKey
from markupsafe import escape
from werkzeug.serving import BaseWSGIServer, make_server

HOST = "127.0.0.1"
TOKEN_PATH = "/oauth/token"
REVOKE_PATH = "/oauth/revoke"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"]
AUTHORIZE_PATH = "/oauth/authorize"
LOGIN_PATH = "/login"
DEFAULT_USER = ("alice", "wonderland")
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/oauth/jwks"


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
    jwks: dict[str, Any] | None = None  # private_key_jwt: the client's public keys
    # RFC 8705 §2.1.2: which client certificate is this client's (tls_client_auth)
    tls_client_auth_subject_dn: str | None = None
    tls_client_auth_san_dns: str | None = None

    def check_tls_client_certificate(self, certificate: x509.Certificate) -> bool:
        """The certificate (already validated by the TLS handshake against the server's
        CA) is the one registered for this client: its subject DN or a DNS SAN."""
        if self.tls_client_auth_subject_dn is not None:
            return certificate.subject.rfc4514_string() == self.tls_client_auth_subject_dn
        if self.tls_client_auth_san_dns is not None:
            try:
                san = certificate.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName
                ).value
            except x509.ExtensionNotFound:
                return False
            return self.tls_client_auth_san_dns in san.get_values_for_type(x509.DNSName)
        return False

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
        # the revocation endpoint authenticates a client as its token endpoint does
        return method == self.token_endpoint_auth_method

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
    revoked: bool = False  # the access token
    refresh_revoked: bool = False  # the refresh token, revoked by revoke_grants
    refresh_used_at: float | None = None  # when a refresh first rotated the refresh token

    def refresh_usable(self, now: float, grace: float) -> bool:
        """The refresh token works: not revoked, and unused or rotated less than `grace` ago."""
        if self.refresh_revoked:
            return False
        return self.refresh_used_at is None or now < self.refresh_used_at + grace

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


@dataclass(frozen=True)
class User:
    """A resource owner who can sign in to the provider."""

    username: str
    password: str
    # OpenID Connect: what the ID token says about the user
    email: str | None = None
    email_verified: bool | None = True  # None: the ID token does not say
    groups: tuple[str, ...] = ()

    @property
    def user_id(self) -> str:
        return self.username

    def get_user_id(self) -> str:
        return self.username


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """An issued authorization code, with what it was bound to."""

    code: str
    client_id: str
    redirect_uri: str | None  # as sent in the authorization request (None: omitted)
    scope: str
    user_id: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    nonce: str | None = None  # OpenID Connect: the authorization request's nonce
    auth_time: int = 0

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


class MemoryStore:
    """Thread-safe in-memory clients, users, authorization codes and tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, Token] = {}  # by access token, in the order issued
        self._jtis: set[tuple[str, str]] = set()  # (client_id, jti) of assertions seen
        #: Refresh tokens presented after rotation made them unusable (grace included).
        self.late_refresh_uses = 0
        #: Refresh tokens used again, after their rotation, within the grace window.
        self.grace_refresh_uses = 0

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

    # users

    def add_user(self, user: User) -> User:
        with self._lock:
            self._users[user.username] = user
        return user

    def get_user(self, username: str | None) -> User | None:
        with self._lock:
            return self._users.get(username) if username is not None else None

    def authenticate_user(self, username: str, password: str) -> User | None:
        user = self.get_user(username)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    # authorization codes

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes[code.code] = code

    def find_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """The unexpired, unused `code` if it was issued to `client_id`."""
        with self._lock:
            found = self._codes.get(code)
        if found is None or found.client_id != client_id or found.is_expired():
            return None
        return found

    def take_code(self, code: AuthorizationCode) -> bool:
        """Consume `code`; False if another request consumed it first."""
        with self._lock:
            return self._codes.pop(code.code, None) is not None

    # refresh tokens

    def find_refresh_token(self, refresh_token: str, grace: float = 0.0) -> Token | None:
        """The token whose refresh token is `refresh_token`, unless revoked, or used more
        than `grace` seconds ago; counts late uses (see `late_refresh_uses`)."""
        now = time.time()
        with self._lock:
            for token in self._tokens.values():
                if token.refresh_token == refresh_token:
                    if token.refresh_usable(now, grace):
                        return token
                    if not token.refresh_revoked:
                        self.late_refresh_uses += 1
                    return None
        return None

    def take_refresh_token(self, token: Token, grace: float = 0.0) -> bool:
        """Use up `token`'s refresh token (it stays usable for `grace` seconds after its
        first use); False if it is no longer usable, another request having used it first."""
        now = time.time()
        with self._lock:
            if not token.refresh_usable(now, grace):
                self.late_refresh_uses += 1
                return False
            if token.refresh_used_at is None:
                token.refresh_used_at = now
            else:
                self.grace_refresh_uses += 1
            return True

    def refresh_tokens(self) -> list[str]:
        with self._lock:
            return [t.refresh_token for t in self._tokens.values() if t.refresh_token]

    def find_any(self, token_string: str, hint: str | None) -> Token | None:
        """The token whose access or refresh token is ``token_string`` (hint first)."""
        with self._lock:
            tokens = list(self._tokens.values())
        by_access = next((t for t in tokens if t.access_token == token_string), None)
        by_refresh = next((t for t in tokens if t.refresh_token == token_string), None)
        if hint == "refresh_token":
            return by_refresh or by_access
        return by_access or by_refresh

    def revoke_token(self, token: Token, refresh_too: bool) -> None:
        with self._lock:
            token.revoked = True
            token.refresh_revoked = token.refresh_revoked or refresh_too

    def use_jti(self, client_id: str, jti: str) -> bool:
        """Record an assertion's jti; False if this client used it before (a replay)."""
        with self._lock:
            key = (client_id, jti)
            if key in self._jtis:
                return False
            self._jtis.add(key)
            return True

    def revoke_grants(self, client_id: str | None) -> None:
        with self._lock:
            for token in self._tokens.values():
                if client_id is None or token.client.client_id == client_id:
                    token.revoked = token.refresh_revoked = True
            for code in list(self._codes.values()):
                if client_id is None or code.client_id == client_id:
                    del self._codes[code.code]


class _AuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask server, giving the grants access to the `OAuthServer` that owns it."""

    def __init__(self, owner: OAuthServer) -> None:
        self.owner = owner
        super().__init__(
            owner.app, query_client=owner.store.get_client, save_token=owner._save_token
        )


class _PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt (RFC 7523 §2.2) as Authlib verifies it, with a single-use jti."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__(validate_jti=True, leeway=5)
        self.owner = owner

    def get_audiences(self) -> list[str]:
        # the endpoint the assertion is sent to (token or revocation), or the issuer
        return [self.owner.token_url, self.owner.revocation_url, self.owner.url]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        return KeySet.import_key_set(client.jwks or {"keys": []})

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        if self.owner.store.use_jti(str(claims["sub"]), str(jti)):
            self.owner.assertions.append(dict(claims))
            return True
        self.owner.replayed_assertions += 1
        return False

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        claims = super().process_assertion_claims(assertion, resolve_key)
        self.owner.assertion_headers.append(self.extract_assertion(assertion)[0])
        return claims


class _RevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    @property
    def owner(self) -> OAuthServer:
        owner: OAuthServer = self.server.owner
        return owner

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return self.owner.store.find_any(token_string, token_type_hint)

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        # RFC 7009 §2.1: revoking a refresh token ends the grant's access token too; an
        # access token revoked alone leaves the refresh token working
        refresh_too = request.form.get("token") == token.refresh_token
        self.owner.store.revoke_token(token, refresh_too)
        self.owner.revocations.append(request.form.get("token_type_hint") or "")


def _authenticate_tls_client(query_client: Any, oauth_request: Any) -> Client | None:
    """RFC 8705 §2.1 ``tls_client_auth``: the body names the client, the certificate the
    TLS handshake verified (werkzeug puts it in SSL_CLIENT_CERT) must be the one registered
    for it, and no client secret is involved."""
    client_id = oauth_request.form.get("client_id")
    pem = request.environ.get("SSL_CLIENT_CERT")
    if not client_id or not pem or oauth_request.form.get("client_secret"):
        return None
    client: Client | None = query_client(client_id)
    if client is None:
        return None
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return client if client.check_tls_client_certificate(certificate) else None


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class _AuthorizationCodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @property
    def owner(self) -> OAuthServer:
        owner: OAuthServer = self.server.owner
        return owner

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.owner.store.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                user_id=request.user.user_id,
                code_challenge=data.get("code_challenge") or None,
                # Authlib lets an empty method through, then fails on it with a RuntimeError
                # (a 500) at the token endpoint: treat it as omitted (that is, "plain").
                code_challenge_method=data.get("code_challenge_method") or None,
                expires_at=time.time() + self.owner.code_lifetime,
                nonce=data.get("nonce") or None,
                auth_time=int(time.time()),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        return self.owner.store.find_code(code, client.client_id)

    def validate_token_request(self) -> None:
        super().validate_token_request()  # client, code, redirect_uri, then PKCE (a hook)
        # Consume the code here, atomically: of two concurrent exchanges only one wins.
        if not self.owner.store.take_code(self.request.authorization_code):
            raise InvalidGrantError("Invalid 'code' in request.")

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        pass  # consumed by validate_token_request

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return self.owner.store.get_user(authorization_code.user_id)


class _CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE (RFC 7636) that `OAuthServer.require_pkce` makes mandatory for every client.

    Authlib's ``CodeChallenge(required=True)`` only insists on a verifier from public clients
    (token endpoint auth method "none"); a confidential client that sends no code_challenge
    passes. Strict providers (and OAuth 2.1) refuse that at the authorization endpoint.
    """

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__(required=True)
        self.owner = owner

    def validate_code_challenge(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        if self.owner.require_pkce and not grant.request.payload.data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required.")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    """OpenID Connect on the code grant: an ID token (RS256, signed with the provider's
    current key) beside the access token when the scope has ``openid``; the owner's knobs
    make it wrong on purpose (another audience, a stale nonce, already expired)."""

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__(require_nonce=True)
        self.owner = owner

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # codes are single-use; cardflow sends a fresh nonce each time

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        if self.owner.id_token_forged:  # another key, under the published key's kid
            return _new_signing_key()
        return self.owner.signing_key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.owner.signing_key.kid or ""}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.owner.url,
            "aud": self.owner.id_token_audience or [client.client_id],
            "iat": now,
            "exp": now + self.owner.id_token_lifetime,
        }

    def get_authorization_code_claims(self, authorization_code: AuthorizationCode) -> Any:
        claims = super().get_authorization_code_claims(authorization_code)
        if self.owner.id_token_nonce is not None:
            claims["nonce"] = self.owner.id_token_nonce
        return claims

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        info = UserInfo(sub=f"sub-{user.username}", name=user.username)
        scopes = scope_to_list(scope) or []
        if "email" in scopes and user.email:
            info["email"] = user.email
            if user.email_verified is not None:
                info["email_verified"] = user.email_verified
        if "groups" in scopes:
            info["groups"] = list(user.groups)
        return info


class _RefreshTokenGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    @property
    def owner(self) -> OAuthServer:
        owner: OAuthServer = self.server.owner
        return owner

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        return self.owner.store.find_refresh_token(refresh_token, self.owner.rotation_grace)

    def validate_token_request(self) -> None:
        super().validate_token_request()  # client, token (its client's), scope
        # Use the refresh token up here, atomically: of two concurrent refreshes only one wins
        # (without a grace window; within one, every use gets a new refresh token).
        grace = self.owner.rotation_grace
        if not self.owner.store.take_refresh_token(self.request.refresh_token, grace):
            raise InvalidGrantError()

    def authenticate_user(self, refresh_token: Token) -> User | None:
        return self.owner.store.get_user(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        pass  # used up by validate_token_request


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

    def __init__(
        self,
        *,
        expires_in: int = 3600,
        require_pkce: bool = True,
        code_lifetime: int = 60,
        rotation_grace: float = 0.0,
        answer_delay: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        #: Serve HTTPS with this context (one demanding client certificates: mutual TLS).
        self.ssl_context = ssl_context
        #: Lifetime in seconds of tokens issued from now on (0: no expiry). Mutable at runtime.
        self.expires_in = expires_in
        #: Seconds a rotated refresh token stays usable (0: strict rotation). Mutable.
        self.rotation_grace = rotation_grace
        #: Seconds the token endpoint sleeps after issuing, before answering. Mutable.
        self.answer_delay = answer_delay
        #: Answer token requests as Slack does for user tokens: the token fields nested
        #: under this key, beside {"ok": true} (None: at the top, RFC 6749). Mutable.
        self.nest_tokens_under: str | None = None
        #: Refuse authorization requests without a code_challenge. Mutable at runtime.
        self.require_pkce = require_pkce
        #: Lifetime in seconds of authorization codes issued from now on. Mutable at runtime.
        self.code_lifetime = code_lifetime
        # OpenID Connect: the ID token signing key (see rotate_signing_key) and knobs that
        # make the next ID tokens wrong on purpose
        self.signing_key = _new_signing_key()
        self.id_token_audience: str | None = None  # another "aud" than the client's id
        self.id_token_nonce: str | None = None  # a "nonce" other than the request's
        self.id_token_lifetime = 3600  # negative: issued already expired
        self.id_token_forged = False  # signed by a key not in the JWKS, under a listed kid
        self.jwks_requests = 0
        self.store = MemoryStore()
        self.store.add_user(User(*DEFAULT_USER))
        self.port = 0
        self._lock = threading.Lock()
        self._token_requests = 0
        self._refresh_requests = 0
        self._code_exchanges = 0
        self._in_flight = 0
        self._invalid_grants = 0
        self._last_authorize_params: dict[str, str] = {}
        self._faults: deque[_Fault] = deque()
        self._delays: deque[float] = deque()
        #: Claims of each private_key_jwt assertion accepted, and each one's JOSE header.
        self.assertions: list[dict[str, Any]] = []
        self.assertion_headers: list[dict[str, Any]] = []
        #: Assertions refused because their jti was used before.
        self.replayed_assertions = 0
        #: token_type_hint of each token revoked at the revocation endpoint.
        self.revocations: list[str] = []
        #: Answer revocation requests with this HTTP status (an error) instead. Mutable.
        self.fail_revocations: int | None = None
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

        self.app = Flask(__name__)
        self.app.secret_key = secrets.token_hex(32)  # signs the provider's session cookie
        self.authorization = _AuthorizationServer(self)
        self.authorization.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=self._new_token_string,
                refresh_token_generator=self._new_token_string,
                expires_generator=self._token_lifetime,
            ),
        )
        self.authorization.register_grant(_ClientCredentialsGrant)
        self.authorization.register_grant(
            _AuthorizationCodeGrant, [_CodeChallenge(self), _OpenIDCode(self)]
        )
        self.authorization.register_grant(_RefreshTokenGrant)
        self.authorization.register_client_auth_method("private_key_jwt", _PrivateKeyJWT(self))
        self.authorization.register_endpoint(_RevocationEndpoint)
        self.authorization.register_client_auth_method("tls_client_auth", _authenticate_tls_client)
        self.resource_protector = ResourceProtector()
        self.resource_protector.register_token_validator(_BearerTokenValidator(self.store))
        self.app.add_url_rule(TOKEN_PATH, "token", self._token_endpoint, methods=["POST"])
        self.app.add_url_rule(REVOKE_PATH, "revoke", self._revoke_endpoint, methods=["POST"])
        self.app.add_url_rule(
            AUTHORIZE_PATH, "authorize", self._authorize_endpoint, methods=["GET", "POST"]
        )
        self.app.add_url_rule(LOGIN_PATH, "login", self._login, methods=["GET", "POST"])
        self.app.add_url_rule("/", "home", self._home, methods=["GET"])
        self.app.add_url_rule("/api/me", "me", self._me, methods=["GET"])
        self.app.add_url_rule(DISCOVERY_PATH, "discovery", self._discovery, methods=["GET"])
        self.app.add_url_rule(JWKS_PATH, "jwks", self._jwks, methods=["GET"])

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("OAuthServer is not running")
        return f"{'https' if self.ssl_context else 'http'}://{HOST}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    @property
    def revocation_url(self) -> str:
        return f"{self.url}{REVOKE_PATH}"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}{AUTHORIZE_PATH}"

    @property
    def login_url(self) -> str:
        return f"{self.url}{LOGIN_PATH}"

    @property
    def discovery_url(self) -> str:
        return f"{self.url}{DISCOVERY_PATH}"

    def rotate_signing_key(self) -> str:
        """Sign ID tokens with a new key (a new kid) from now on; the JWKS serves only the
        new key. Returns the new kid."""
        self.signing_key = _new_signing_key()
        return self.signing_key.kid or ""

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("OAuthServer already started")
        self._stopping.clear()
        self._server = make_server(HOST, 0, self.app, threaded=True, ssl_context=self.ssl_context)
        self.port = self._server.server_port
        # Cookies ignore ports: a per-port name keeps this provider's session its own.
        self.app.config["SESSION_COOKIE_NAME"] = f"provider_session_{self.port}"
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
        response_types: tuple[str, ...] | None = None,
        jwks: dict[str, Any] | None = None,
        tls_client_auth_subject_dn: str | None = None,
        tls_client_auth_san_dns: str | None = None,
    ) -> Client:
        """Register a client. For the code flow give ``grant_types=("authorization_code",
        "refresh_token")`` (without "refresh_token" no refresh token is issued) and the exact
        ``redirect_uris``; `response_types` defaults to ("code",) for such clients. For
        ``private_key_jwt``, ``jwks`` is its public JWK Set ({"keys": [jwk]})."""
        if response_types is None:
            response_types = ("code",) if "authorization_code" in grant_types else ()
        return self.store.add_client(
            Client(
                client_id=client_id,
                client_secret=client_secret,
                token_endpoint_auth_method=token_endpoint_auth_method,
                scope=scope,
                grant_types=grant_types,
                redirect_uris=redirect_uris,
                response_types=response_types,
                jwks=jwks,
                tls_client_auth_subject_dn=tls_client_auth_subject_dn,
                tls_client_auth_san_dns=tls_client_auth_san_dns,
            )
        )

    def add_user(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        email_verified: bool | None = True,
        groups: tuple[str, ...] = (),
    ) -> User:
        """A resource owner who can sign in (``alice``/``wonderland`` exists already); the
        email and groups go into their ID tokens (scopes email and groups)."""
        return self.store.add_user(User(username, password, email, email_verified, groups))

    @property
    def token_requests(self) -> int:
        """POSTs received by the token endpoint, failed and injected-failure ones included."""
        with self._lock:
            return self._token_requests

    @property
    def refresh_requests(self) -> int:
        """Token endpoint POSTs with grant_type=refresh_token (failed ones included)."""
        with self._lock:
            return self._refresh_requests

    @property
    def code_exchanges(self) -> int:
        """Token endpoint POSTs with grant_type=authorization_code (failed ones included)."""
        with self._lock:
            return self._code_exchanges

    @property
    def in_flight(self) -> int:
        """Token requests being handled right now (sleeping in `answer_delay` included)."""
        with self._lock:
            return self._in_flight

    @property
    def invalid_grants(self) -> int:
        """Token endpoint answers with ``error=invalid_grant`` (injected ones included)."""
        with self._lock:
            return self._invalid_grants

    @property
    def late_refresh_uses(self) -> int:
        """Refresh requests whose refresh token had been rotated and whose grace (if any) had
        passed (each is answered invalid_grant)."""
        return self.store.late_refresh_uses

    @property
    def grace_refresh_uses(self) -> int:
        """Refresh requests accepted only thanks to `rotation_grace`: their refresh token had
        been rotated already (its answer lost, say), less than the grace ago."""
        return self.store.grace_refresh_uses

    @property
    def last_authorize_params(self) -> dict[str, str]:
        """Query parameters of the last request to the authorization endpoint, as sent."""
        with self._lock:
            return dict(self._last_authorize_params)

    @property
    def issued_tokens(self) -> list[str]:
        """Access tokens issued so far, oldest first."""
        return [token.access_token for token in self.store.tokens()]

    @property
    def issued_refresh_tokens(self) -> list[str]:
        """Refresh tokens issued so far (used and revoked ones included), oldest first."""
        return self.store.refresh_tokens()

    def revoke_all(self) -> None:
        """Revoke every access token issued so far; refresh tokens keep working."""
        self.store.revoke_all()

    def revoke_grants(self, client_id: str | None = None) -> None:
        """The user revokes the app: every access and refresh token (and unused code) of
        `client_id`, or of every client, stops working; a refresh then gets invalid_grant."""
        self.store.revoke_grants(client_id)

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
        grant_type = request.form.get("grant_type")
        with self._lock:
            self._token_requests += 1
            self._refresh_requests += int(grant_type == "refresh_token")
            self._code_exchanges += int(grant_type == "authorization_code")
            self._in_flight += 1
            delay = self._delays.popleft() if self._delays else 0.0
            fault = self._faults.popleft() if self._faults else None
        try:
            response = self._token_response(delay, fault)
            if self.answer_delay:
                self._stopping.wait(self.answer_delay)  # issued (and rotated), not answered
        finally:
            with self._lock:
                self._in_flight -= 1
        return response

    def _token_response(self, delay: float, fault: _Fault | None) -> Response:
        if delay:
            self._stopping.wait(delay)
        if fault is not None:
            response = jsonify(error=fault.error, error_description="injected by fail_next()")
            response.status_code = fault.status
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
        else:
            response = self.authorization.create_token_response()
            assert isinstance(response, Response)
            nest = self.nest_tokens_under
            if nest and response.status_code == 200:
                fields = response.get_json()
                nested = jsonify({"ok": True, "app_id": "A0", nest: fields})
                nested.headers["Cache-Control"] = "no-store"
                response = nested
        if (
            response.status_code >= 400
            and (response.get_json(silent=True) or {}).get("error") == "invalid_grant"
        ):
            with self._lock:
                self._invalid_grants += 1
        return response

    def _revoke_endpoint(self) -> Response:
        if self.fail_revocations is not None:
            response = jsonify(error="server_error", error_description="injected failure")
            response.status_code = self.fail_revocations
            return response
        return self._response(self.authorization.create_endpoint_response("revocation"))

    def _me(self) -> Response:
        with self.resource_protector.acquire() as token:
            return jsonify(
                client_id=token.client.client_id,
                scope=token.scope,
                token_suffix=token.access_token[-4:],
            )

    def _discovery(self) -> Response:
        base = self.url
        return jsonify(
            issuer=base,
            authorization_endpoint=base + AUTHORIZE_PATH,
            token_endpoint=base + TOKEN_PATH,
            jwks_uri=base + JWKS_PATH,
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=["openid", "email", "profile", "groups"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            code_challenge_methods_supported=["S256"],
            grant_types_supported=["authorization_code", "refresh_token"],
        )

    def _jwks(self) -> Response:
        with self._lock:
            self.jwks_requests += 1
        return jsonify(keys=[self.signing_key.as_dict(private=False)])

    def _session_user(self) -> User | None:
        return self.store.get_user(session.get("user"))

    def _authorize_endpoint(self) -> Response:
        with self._lock:
            self._last_authorize_params = request.args.to_dict()
        user = self._session_user()
        if user is None:
            here = request.path + (
                f"?{request.query_string.decode()}" if request.query_string else ""
            )
            return _redirect(f"{LOGIN_PATH}?{urlencode({'next': here})}")
        try:
            grant = self.authorization.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            # With a verified redirect_uri this redirects back with the error; otherwise
            # (unknown client, unregistered redirect_uri) the user sees a 400 here.
            return self._response(self.authorization.handle_error_response(None, error))
        if request.method == "POST":
            grant_user = user if request.form.get("confirm") == "yes" else None
            return self._response(
                self.authorization.create_authorization_response(grant_user=grant_user, grant=grant)
            )
        client = grant.client
        scope = grant.request.scope or ""
        return _page(
            "Authorize access",
            f"<p>Signed in as <b>{escape(user.username)}</b>.</p>"
            f"<p><b>{escape(client.client_id)}</b> wants access to: "
            f"<code>{escape(scope)}</code></p>"
            f'<form method="post" action="{escape(request.full_path)}">'
            '<button name="confirm" value="yes">Allow</button> '
            '<button name="confirm" value="no">Deny</button></form>',
        )

    def _login(self) -> Response:
        next_url = request.values.get("next", "/")
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/"  # no open redirect
        status, message = 200, ""
        action = f"{LOGIN_PATH}?{urlencode({'next': next_url})}"
        if request.method == "POST":
            user = self.store.authenticate_user(
                request.form.get("username", ""), request.form.get("password", "")
            )
            if user is not None:
                session.clear()
                session["user"] = user.username
                return _redirect(next_url)
            status, message = 401, '<p class="error">Wrong username or password.</p>'
        response = _page(
            "Sign in",
            f"{message}"
            f'<form method="post" action="{escape(action)}">'
            '<label>Username <input name="username" autocomplete="username"></label> '
            '<label>Password <input name="password" type="password"></label> '
            "<button>Sign in</button></form>",
        )
        response.status_code = status
        return response

    def _home(self) -> Response:
        user = self._session_user()
        return _page("Provider", f"<p>Signed in as {escape(user.username)}.</p>" if user else "")

    @staticmethod
    def _response(response: Any) -> Response:
        assert isinstance(response, Response)
        return response


def _new_signing_key() -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
    )


def _redirect(location: str) -> Response:
    response = redirect(location, code=302)
    assert isinstance(response, Response)
    return response


def _page(title: str, body: str) -> Response:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})
