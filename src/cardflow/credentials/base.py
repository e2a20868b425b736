"""What every auth type shares: the config base, the ``httpx.Auth`` base, and
:class:`AuthType` — everything about one auth type, so that a new one is one module
(config model + auth + ``AUTH_TYPE``) and one line in :mod:`cardflow.credentials.registry`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from cardflow.errors import InvalidInput
from cardflow.net.tls import (
    MAX_CA_CHARS,
    MAX_CERTIFICATE_CHARS,
    MAX_KEY_CHARS,
    CertificateProblem,
    ClientTls,
    check_ca_certificates,
    check_client_certificate,
    client_tls,
    summarize_certificate,
)

if TYPE_CHECKING:
    from cardflow.credentials.token_manager import TokenGrant, TokenManager
    from cardflow.net.transport import HttpTransport


class OutgoingRequest(Protocol):
    """The part of a request an auth flow touches: httpx.Request fits, so does cardflow's own."""

    @property
    def headers(self) -> MutableMapping[str, str]: ...


class IncomingResponse(Protocol):
    @property
    def status_code(self) -> int: ...


RequestT = TypeVar("RequestT", bound=OutgoingRequest)


# Mutual TLS (RFC 8705) fields every auth type has: the client certificate and its key are
# secrets (the certificate too: write-only like the key, shown only as its subject, issuer,
# validity and fingerprint); the CA bundle is not.
CLIENT_TLS_SECRET_FIELDS = ("client_certificate", "client_key")
CLIENT_TLS_FIELDS = (*CLIENT_TLS_SECRET_FIELDS, "ca_certificate")

# A rule on a choice field: (the choice field, the values for which it holds).
Condition = tuple[str, frozenset[str]]


def _holds(model: type[BaseModel], rule: Condition, values: Mapping[str, Any]) -> bool:
    choice, allowed = rule
    return values.get(choice, model.model_fields[choice].default) in allowed


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def no_control_characters(value: str, what: str) -> str:
    """``value`` (a credential sent on the wire), or ValueError naming the first control
    character in it and where."""
    match = _CONTROL.search(value)
    if match is not None:
        raise ValueError(
            f"{what} must not contain control characters (found {match.group()!r} at "
            f"position {match.start()})"
        )
    return value


class AuthConfig(BaseModel):
    """A connection's config for one auth type; fields listed in ``secret_fields`` are secrets.

    Every auth type also has the optional mutual-TLS fields (``CLIENT_TLS_FIELDS``): an API
    may want Basic or a bearer token over a client certificate, or (``none``) only that."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    # Each subclass lists its own; the client certificate and key are added to them.
    secret_fields: ClassVar[tuple[str, ...]] = CLIENT_TLS_SECRET_FIELDS
    # Fields saying where the secrets are sent (a token URL): moving one to another
    # scheme, host or port needs the secrets entered again, like widening allowed_hosts.
    destination_fields: ClassVar[tuple[str, ...]] = ()
    # Secret fields that may legitimately be empty (a Basic password).
    optional_secret_fields: ClassVar[tuple[str, ...]] = CLIENT_TLS_SECRET_FIELDS
    # Fields that apply only while a choice field has one of some values (a client secret
    # only with the client_secret_* methods): field -> (choice field, those values). A
    # required secret is required only while it applies; forms hide what does not apply.
    applies_when: ClassVar[Mapping[str, Condition]] = MappingProxyType({})
    # Optional fields that are required while a choice field has one of some values (the
    # client certificate and key with tls_client_auth): the same shape as applies_when.
    required_when: ClassVar[Mapping[str, Condition]] = MappingProxyType({})
    # Fields holding PEM text (several lines: forms give them a text area, the CLI reads
    # them with --from-file and never prompts for one).
    pem_fields: ClassVar[tuple[str, ...]] = CLIENT_TLS_FIELDS
    # Non-secret values worked out from the secrets (a public key), stored and shown with
    # the config but never given: see derived().
    derived_fields: ClassVar[tuple[str, ...]] = ()

    client_certificate: str = Field(
        default="",
        max_length=MAX_CERTIFICATE_CHARS,
        description="Mutual TLS: the client certificate (PEM; the leaf first, then any "
        "intermediates), presented to the allowed hosts and the token endpoint; stored "
        "encrypted, shown only as its subject, expiry and fingerprint.",
    )
    client_key: str = Field(
        default="",
        max_length=MAX_KEY_CHARS,
        description="Mutual TLS: the client certificate's private key (PEM, unencrypted); secret.",
    )
    ca_certificate: str | None = Field(
        default=None,
        max_length=MAX_CA_CHARS,
        description="CA certificates (PEM) to trust for this connection's servers instead of "
        "the system's: for a private server CA.",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # each subclass lists its own; the mutual-TLS fields every type has are added
        for name, shared in (
            ("secret_fields", CLIENT_TLS_SECRET_FIELDS),
            ("optional_secret_fields", CLIENT_TLS_SECRET_FIELDS),
            ("pem_fields", CLIENT_TLS_FIELDS),
        ):
            own: tuple[str, ...] = getattr(cls, name)
            setattr(cls, name, own + tuple(f for f in shared if f not in own))

    @classmethod
    def required_secret_fields(cls) -> tuple[str, ...]:
        """The secrets a connection of this type cannot work without (where they apply)."""
        return tuple(f for f in cls.secret_fields if f not in cls.optional_secret_fields)

    @classmethod
    def field_applies(cls, name: str, values: Mapping[str, Any]) -> bool:
        """Whether ``name`` applies to a config with these ``values`` (defaults fill gaps)."""
        rule = cls.applies_when.get(name)
        return rule is None or _holds(cls, rule, values)

    @classmethod
    def field_required(cls, name: str, values: Mapping[str, Any]) -> bool:
        """Whether secret ``name`` must be given in a config with these ``values``: a
        required secret where it applies, an optional one while its ``required_when`` holds
        (non-secret required fields are pydantic's: they have no default)."""
        if not cls.field_applies(name, values):
            return False
        if name in cls.required_secret_fields():
            return True
        rule = cls.required_when.get(name)
        return rule is not None and _holds(cls, rule, values)

    def needed_secrets(self) -> tuple[str, ...]:
        """The secrets this config cannot work without."""
        values = self.model_dump()
        return tuple(f for f in self.secret_fields if self.field_required(f, values))

    def missing_message(self, name: str) -> str:
        """Why a needed secret that is empty is needed, naming the field (the rule too, for
        one required only with some choice)."""
        rule = self.required_when.get(name)
        if rule is None or name in self.required_secret_fields():
            return f"config.{name}: this field is required"
        choice = rule[0]
        return f"config.{name}: this field is required with {choice} {getattr(self, choice)}"

    def derived(self) -> dict[str, Any]:
        """The ``derived_fields``' values (JSON-ready)."""
        return {}

    def public(self) -> dict[str, Any]:
        data = self.model_dump(exclude=set(self.secret_fields), mode="json")
        if data.get("ca_certificate") is None:
            del data["ca_certificate"]  # mutual TLS shows only where it is used
        return data | self.derived()

    def secrets(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.secret_fields if getattr(self, name)}

    def secret_summaries(self) -> dict[str, dict[str, Any]]:
        """What may be shown about secret fields beside ``{"set": true}``: the client
        certificate's subject, issuer, validity and fingerprint."""
        if not self.client_certificate:
            return {}
        return {"client_certificate": summarize_certificate(self.client_certificate).to_json()}

    def check_before_save(self) -> None:
        """Checks a config must pass to be saved, not to be loaded again (a certificate
        may expire after it was saved); raises InvalidInput naming the field."""
        try:
            if bool(self.client_certificate) != bool(self.client_key):
                missing = "client_key" if self.client_certificate else "client_certificate"
                raise CertificateProblem(
                    missing, "mutual TLS needs both client_certificate and client_key"
                )
            if self.client_certificate:
                check_client_certificate(self.client_certificate, self.client_key)
            if self.ca_certificate:
                check_ca_certificates(self.ca_certificate)
        except CertificateProblem as exc:
            raise InvalidInput(
                f"config.{exc.field}: {exc.message}.", field=f"config.{exc.field}"
            ) from None

    def client_tls(self) -> ClientTls | None:
        """The TLS contexts for this config's certificate and CA bundle; None without."""
        if not (self.client_certificate or self.ca_certificate):
            return None
        return client_tls(self.client_certificate, self.client_key, self.ca_certificate)


class ConnectionAuth(httpx.Auth):
    """An httpx.Auth whose ``auth_flow`` also drives cardflow's own transport.

    ``added_headers`` names the headers this auth sets; they are never sent to another
    origin on a redirect. ``added_query`` holds the query parameters it sets (name: value):
    cardflow's client puts them in the URL itself, as it does the ``ready_headers``, and
    they too stay on their origin.
    """

    added_headers: frozenset[str] = frozenset()
    added_query: Mapping[str, str] = MappingProxyType({})
    # The connection's client certificate and CA bundle (mutual TLS), set by AuthType.
    client_tls: ClientTls | None = None
    # True when a 401 may be answered by new headers (a refreshed token): see unauthorized.
    retries_unauthorized: bool = False
    # True when the added headers' values differ from request to request (Digest): what
    # ``one_time_values`` finds in them is kept out of what the request's work stores and
    # answers, but not remembered process-wide for the log (each new value would push out
    # a lasting secret).
    header_values_vary: bool = False

    def ready_headers(self) -> Mapping[str, str] | None:
        """The headers for a first attempt when they are known now, without I/O (fixed
        ones, a cached fresh token): cardflow's client sets them without driving the
        generator, the hot path. None means: drive ``async_auth_flow``. The mapping is
        shared between calls and must not be changed."""
        return None

    async def unauthorized(self, request: OutgoingRequest) -> bool:
        """``request``, sent with :meth:`ready_headers`, was answered 401: set new headers
        on it and say True to send it once more (only when ``retries_unauthorized``)."""
        return False

    def static_values(self) -> list[str]:
        """Secrets fixed by the connection's config (passwords, keys, client secrets, in
        every encoding this auth sends them in): they never change while it lives."""
        return self.sensitive_values()

    def sensitive_values(self) -> list[str]:
        """Strings this auth puts on the wire that must never be stored or shown (the
        static ones and, for token auths, the tokens it holds now)."""
        return []

    def one_time_values(self, header_value: str) -> list[str]:
        """With ``header_values_vary``: the parts of one of its header values that must not
        be kept (a Digest answer's response hash)."""
        return []

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        yield request

    async def async_auth_flow(
        self, request: RequestT
    ) -> AsyncGenerator[RequestT, IncomingResponse]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return


@dataclass(frozen=True)
class AuthSetup:
    """What building a connection's auth may need from the process it runs in."""

    transport: HttpTransport
    timeout: float  # for token requests
    # The connection's token manager, for auth types that fetch tokens with a grant.
    token_manager: Callable[[TokenGrant], TokenManager]
    # The connection's TLS contexts (client certificate, CA bundle), for its token requests.
    client_tls: ClientTls | None = None


@dataclass(frozen=True)
class AuthType:
    """One auth type: its config, how it builds its auth, and how connections of it live.

    ``user_authorizes``: a new connection needs a user to authorize it (in a browser)
    before it can be used, and again when one of ``grant_fields`` changes. For other
    types any config change makes the connection ready with the new values (and drops
    a token it held: a changed client secret or scope means a new token).
    """

    name: str
    title: str
    config: type[AuthConfig]
    # (config, setup) -> auth; the config is always an instance of ``config``.
    build: Callable[[Any, AuthSetup], ConnectionAuth]
    uses_tokens: bool = False
    user_authorizes: bool = False
    grant_fields: tuple[str, ...] = ()

    def build_auth(self, config: AuthConfig, setup: AuthSetup) -> ConnectionAuth:
        if not isinstance(config, self.config):
            raise TypeError(f"{self.name} auth needs a {self.config.__name__}")
        tls = config.client_tls()
        auth = self.build(config, replace(setup, client_tls=tls))
        auth.client_tls = tls
        return auth
