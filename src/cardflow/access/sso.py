"""Single sign-on with an OpenID Connect provider (authorization code, PKCE S256).

`SingleSignOn.start` makes the provider's authorization URL: a fresh ``state`` (stored
hashed), ``nonce`` and PKCE verifier are kept in ``sso_logins`` for ten minutes, at most
`MAX_PENDING` at once. `SingleSignOn.finish` uses that row once (a replayed state finds
nothing), exchanges the code at the token endpoint (client_secret_basic, or
client_secret_post when the provider offers only that), and verifies the ID token with
joserfc: its signature with a key from the provider's JWKS (cached; a kid it does not know
fetches the JWKS again, at most once a minute: key rotation), ``iss``, ``aud`` (and ``azp``),
``exp`` and ``iat`` with a minute's leeway, and the ``nonce``. Then the user: found by the
provider's subject, else by email (a user who has none yet), else created when their
email's domain is allowed; their role comes from the role claim on every login (see
`SingleSignOn.role_for`). The caller opens the web session.

Every outgoing request (discovery, JWKS, token) goes through one httpx client with timeouts,
no redirects and a bound on the answer's size. Failures raise `SsoFailed` with a reason fit
to show: never a token, a code or the client secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cardflow.access.hashing import hash_token
from cardflow.access.roles import Role
from cardflow.access.users import MAX_NAME_CHARS, UserService
from cardflow.settings import Settings
from cardflow.store.db import Database
from cardflow.store.models import SsoLogin, User

log = logging.getLogger("cardflow.access.sso")

CALLBACK_PATH = "/sso/callback"
LOGIN_LIFETIME = timedelta(minutes=10)
MAX_PENDING = 1000  # sign-ins under way at once; more are refused until some finish or expire
MAX_DOCUMENT_BYTES = 512 * 1024  # discovery, JWKS and token answers
MAX_PARAM_CHARS = 4096  # code, state, error description from the callback's query
DISCOVERY_TTL = 3600.0
JWKS_TTL = 3600.0
JWKS_REFETCH_INTERVAL = 60.0  # an unknown kid fetches the JWKS again at most this often
LEEWAY_SECONDS = 60
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Asymmetric algorithms only: never "none", never HMAC with the client secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")


class SsoFailed(Exception):
    """A sign-in that did not work; ``reason`` is safe to show and to log."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@dataclass
class _Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    auth_method: str  # client_secret_basic or client_secret_post
    algorithms: list[str]


def _hash_state(state: str) -> str:
    return hash_token(state)


@dataclass
class SingleSignOn:
    """The OpenID Connect client of one cardflow process."""

    db: Database
    settings: Settings
    # Called after a user's role changed (forgets sessions checked recently).
    changed: Callable[[], None] = field(default=lambda: None)
    transport: httpx.AsyncBaseTransport | None = None

    def __post_init__(self) -> None:
        self._provider: _Provider | None = None
        self._provider_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._last_refetch = -JWKS_REFETCH_INTERVAL

    @property
    def enabled(self) -> bool:
        return self.settings.oidc_enabled

    @property
    def provider_name(self) -> str:
        return self.settings.oidc_provider_name

    @property
    def redirect_uri(self) -> str:
        return self.settings.public_url.rstrip("/") + CALLBACK_PATH

    # -- HTTP ------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=TIMEOUT, follow_redirects=False, transport=self.transport, trust_env=False
        )

    async def _json(self, what: str, request: httpx.Request) -> dict[str, Any]:
        """Send ``request``; its JSON object answer, read up to MAX_DOCUMENT_BYTES."""
        try:
            async with self._client() as client:
                response = await client.send(request, stream=True)
                try:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_DOCUMENT_BYTES:
                            raise SsoFailed(
                                f"the provider's {what} answer is larger than "
                                f"{MAX_DOCUMENT_BYTES} bytes",
                                502,
                            )
                finally:
                    await response.aclose()
        except httpx.HTTPError as exc:
            raise SsoFailed(
                f"could not reach the provider's {what} ({type(exc).__name__})", 502
            ) from None
        try:
            data = json.loads(bytes(body))
        except ValueError:
            data = None
        if response.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            raise SsoFailed(
                f"the provider's {what} answered {response.status_code}"
                + (f" ({str(error)[:100]})" if error else ""),
                502,
            )
        if not isinstance(data, dict):
            raise SsoFailed(f"the provider's {what} did not answer a JSON object", 502)
        return data

    async def _discover(self) -> _Provider:
        now = time.monotonic()
        if self._provider is not None and now - self._provider_at < DISCOVERY_TTL:
            return self._provider
        url = self.settings.oidc_discovery_url or ""
        _check_url(url, "discovery URL")
        doc = await self._json("discovery document", httpx.Request("GET", url))
        try:
            issuer = str(doc["issuer"])
            endpoints = [
                str(doc[name]) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
            ]
        except KeyError as exc:
            raise SsoFailed(
                f"the provider's discovery document has no {exc.args[0]}", 502
            ) from None
        # OpenID Connect Discovery §4.3: the issuer is the URL the document was fetched from
        if url != issuer.rstrip("/") + "/.well-known/openid-configuration":
            raise SsoFailed(
                "the provider's discovery document names another issuer than its URL", 502
            )
        for endpoint in endpoints:
            _check_url(endpoint, "endpoint")
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        auth_method = (
            "client_secret_post"
            if "client_secret_basic" not in methods and "client_secret_post" in methods
            else "client_secret_basic"
        )
        offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in ALGORITHMS if alg in offered]
        if not algorithms:
            raise SsoFailed("the provider signs ID tokens with no algorithm cardflow accepts", 502)
        authorize, token, jwks = endpoints
        self._provider = _Provider(issuer, authorize, token, jwks, auth_method, algorithms)
        self._provider_at = now
        return self._provider

    async def _key_set(self, provider: _Provider, *, refetch: bool = False) -> KeySet:
        now = time.monotonic()
        fresh = self._keys is not None and now - self._keys_at < JWKS_TTL
        if self._keys is not None and fresh and not refetch:
            return self._keys
        if refetch and now - self._last_refetch < JWKS_REFETCH_INTERVAL and self._keys is not None:
            return self._keys
        if refetch:
            self._last_refetch = now
        doc = await self._json("JWKS", httpx.Request("GET", provider.jwks_uri))
        keys = [k for k in doc.get("keys") or [] if isinstance(k, dict) and k.get("use") != "enc"]
        try:
            self._keys = KeySet.import_key_set({"keys": keys[:100]})
        except (JoseError, ValueError, TypeError):
            raise SsoFailed("the provider's JWKS holds no usable keys", 502) from None
        self._keys_at = now
        return self._keys

    # -- the flow --------------------------------------------------------------------------

    async def start(self) -> tuple[str, str]:
        """Keep a new state, nonce and verifier; the provider's authorization URL and the
        state (the browser keeps it in a cookie: the callback must come back to it)."""
        provider = await self._discover()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        verifier = verifier + secrets.token_urlsafe(16)  # 64+ characters (RFC 7636: 43-128)
        await asyncio.to_thread(self._keep, state, nonce, verifier)
        scopes = ["openid", "email", "profile"]
        scopes += [s for s in self.settings.oidc_extra_scopes.split() if s not in scopes]
        params = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id or "",
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        sep = "&" if "?" in provider.authorization_endpoint else "?"
        return f"{provider.authorization_endpoint}{sep}{urlencode(params)}", state

    def _keep(self, state: str, nonce: str, verifier: str) -> None:
        now = datetime.now(UTC)
        with self.db.session() as session:
            session.execute(delete(SsoLogin).where(SsoLogin.expires_at < now))
            pending = session.scalar(select(func.count()).select_from(SsoLogin)) or 0
            if pending >= MAX_PENDING:
                raise SsoFailed(
                    f"{MAX_PENDING} sign-ins are under way already; try again in a few minutes",
                    503,
                )
            session.add(
                SsoLogin(
                    state_hash=_hash_state(state),
                    nonce=nonce,
                    code_verifier=verifier,
                    expires_at=now + LOGIN_LIFETIME,
                )
            )

    def _take(self, state: str) -> tuple[str, str]:
        """The nonce and verifier kept for ``state``, used up now."""
        with self.db.session() as session:
            row = session.scalars(
                select(SsoLogin).where(SsoLogin.state_hash == _hash_state(state))
            ).first()
            if row is None:
                raise SsoFailed("this sign-in is unknown or was used already (state); start again")
            gone = session.execute(delete(SsoLogin).where(SsoLogin.id == row.id))
            if gone.rowcount != 1:  # type: ignore[attr-defined]
                raise SsoFailed("this sign-in was used already (state); start again")
            expired = row.expires_at.replace(tzinfo=row.expires_at.tzinfo or UTC) < datetime.now(
                UTC
            )
            if expired:
                raise SsoFailed("this sign-in took too long (over 10 minutes); start again")
            return row.nonce, row.code_verifier

    async def finish(self, params: Mapping[str, str], browser_state: str | None) -> str:
        """The callback: check it, get and verify the ID token; the user's id.

        ``browser_state`` is the state the browser kept when it started: a callback URL
        made in another browser (login CSRF: someone else's sign-in) does not work here."""
        state = params.get("state") or ""
        if not state or len(state) > MAX_PARAM_CHARS:
            raise SsoFailed("the provider's answer has no valid state")
        if not browser_state or not secrets.compare_digest(
            browser_state.encode("utf-8", "replace"), state.encode("utf-8", "replace")
        ):
            raise SsoFailed("this sign-in was not started in this browser; start again")
        nonce, verifier = await asyncio.to_thread(self._take, state)
        error = params.get("error")
        if error:
            raise SsoFailed(f"the provider refused: {error[:100]}", 403)
        code = params.get("code") or ""
        if not code or len(code) > MAX_PARAM_CHARS:
            raise SsoFailed("the provider's answer has no code")
        provider = await self._discover()
        id_token = await self._exchange(provider, code, verifier)
        claims = await self._verify(provider, id_token, nonce)
        return await asyncio.to_thread(self._user_for, claims)

    async def _exchange(self, provider: _Provider, code: str, verifier: str) -> str:
        client_id = self.settings.oidc_client_id or ""
        secret = self.settings.oidc_client_secret
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        secret_text = secret.get_secret_value() if secret else ""
        headers = {"Accept": "application/json"}
        if provider.auth_method == "client_secret_post":
            form |= {"client_id": client_id, "client_secret": secret_text}
        else:  # RFC 6749 §2.3.1: both form-urlencoded before Basic
            pair = f"{quote(client_id, safe='')}:{quote(secret_text, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        request = httpx.Request("POST", provider.token_endpoint, data=form, headers=headers)
        answer = await self._json("token endpoint", request)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SsoFailed("the provider's token answer has no ID token", 502)
        return id_token

    async def _verify(self, provider: _Provider, id_token: str, nonce: str) -> dict[str, Any]:
        keys = await self._key_set(provider)
        try:
            token = jwt.decode(id_token, keys, algorithms=provider.algorithms)
        except InvalidKeyIdError:
            # the provider may have rotated its keys: fetch them again (once)
            keys = await self._key_set(provider, refetch=True)
            token = self._decode(id_token, keys, provider)
        except BadSignatureError:
            raise SsoFailed("the ID token's signature is not valid") from None
        except JoseError as exc:
            raise SsoFailed(f"the ID token could not be read ({type(exc).__name__})") from None
        claims = dict(token.claims)
        client_id = self.settings.oidc_client_id or ""
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise SsoFailed("the ID token has expired") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            raise SsoFailed(f"the ID token's {_claim_words(exc.claim)} is not valid") from None
        except JoseError as exc:
            raise SsoFailed(f"the ID token is not valid ({type(exc).__name__})") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != client_id:
            raise SsoFailed("the ID token's authorized party (azp) is not this cardflow")
        return claims

    @staticmethod
    def _decode(id_token: str, keys: KeySet, provider: _Provider) -> Any:
        try:
            return jwt.decode(id_token, keys, algorithms=provider.algorithms)
        except InvalidKeyIdError:
            raise SsoFailed(
                "the ID token is signed with a key the provider does not list"
            ) from None
        except BadSignatureError:
            raise SsoFailed("the ID token's signature is not valid") from None
        except JoseError as exc:
            raise SsoFailed(f"the ID token could not be read ({type(exc).__name__})") from None

    # -- users -----------------------------------------------------------------------------

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        """The highest role the role claim's values map to; else the default role (None:
        refused)."""
        mapped: list[Role] = []
        if self.settings.oidc_role_claim:
            value = claims.get(self.settings.oidc_role_claim)
            values = value if isinstance(value, list) else [value]
            for item in values[:1000]:
                role = self.settings.oidc_role_map.get(str(item)) if item is not None else None
                if role is not None:
                    mapped.append(Role(role))
        if mapped:
            return max(mapped, key=lambda r: r.rank)
        default = self.settings.oidc_default_role
        return Role(default) if default else None

    def _user_for(self, claims: Mapping[str, Any]) -> str:
        subject = str(claims["sub"])[:255]
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 320:
            raise SsoFailed("the provider gave no email address (scope email)", 403)
        verified = claims.get("email_verified")
        if verified is False or (
            verified is not True and self.settings.oidc_require_verified_email
        ):
            raise SsoFailed(f"the provider has not verified the email address {email}", 403)
        domain = email.rpartition("@")[2].lower()
        allowed = self.settings.oidc_allowed_domains
        if allowed and domain not in allowed:
            raise SsoFailed(f"users of {domain} may not log in to this cardflow", 403)
        role = self.role_for(claims)
        if role is None:
            raise SsoFailed(f"{email} has no role in this cardflow (role claim)", 403)
        changed = False
        with self.db.session() as session:
            UserService.owner_row(session)  # the first user is always the owner
            user = session.scalars(select(User).where(User.oidc_subject == subject)).first()
            if user is None:
                user = session.scalars(
                    select(User).where(
                        func.lower(User.email) == email.lower(), User.oidc_subject.is_(None)
                    )
                ).first()
                if user is not None:
                    user.oidc_subject = subject
            if user is None:
                user = self._create(session, email, subject, role)
            elif user.role != Role.owner and user.role != role.value:
                # owners are made and unmade in cardflow only
                user.role = role.value
                changed = True
            session.flush()
            user_id = user.id
        if changed:
            self.changed()
        return user_id

    @staticmethod
    def _create(session: Session, email: str, subject: str, role: Role) -> User:
        name = email[:MAX_NAME_CHARS]
        if session.scalars(select(User.id).where(User.name == name)).first() is not None:
            raise SsoFailed(
                f"a user named {name!r} exists already with another sign-in; ask the owner", 409
            )
        user = User(name=name, email=email, role=role.value, oidc_subject=subject)
        session.add(user)
        return user


def _check_url(url: str, what: str) -> None:
    """https, or http to a loopback address (a provider on this host, tests)."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise SsoFailed(f"the provider's {what} must be an https:// URL", 502)


def _claim_words(name: str) -> str:
    words = {
        "iss": "issuer (iss)",
        "aud": "audience (aud)",
        "nonce": "nonce",
        "sub": "subject (sub)",
        "iat": "issue time (iat)",
        "exp": "expiry (exp)",
    }
    return words.get(name.strip("'\" "), f"claim {name[:40]}")
