"""Every ``CARDFLOW_*`` setting, documented once."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Cloud metadata and link-local ranges, and the unspecified addresses (which reach this
# host): 169.254.169.254 (AWS, GCP, Azure, Oracle, DigitalOcean), fd00:ec2::254 (AWS
# IPv6), 100.100.100.200 (Alibaba), 168.63.129.16 (Azure WireServer).
DEFAULT_DENY_NETWORKS = (
    "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,168.63.129.16/32,"
    "0.0.0.0/32,::/128"
)


def parse_networks(value: str | list[str] | tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    """Parse a comma-separated list of CIDRs (``10.0.0.0/8, ::1/128``)."""
    if isinstance(value, tuple):
        return value
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


class Settings(BaseSettings):
    """cardflow's configuration, read from ``CARDFLOW_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CARDFLOW_", extra="ignore")

    home: Path = Field(
        default=Path(".cardflow"),
        description="Directory for the embedded SQLite database and the master key file.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite under home. postgresql://… for scale-out.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Base64 (or 64 hex digits) 32-byte key wrapping the data keys. "
        "Without it, home/master.key is used (created on first start, mode 0600).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL users reach cardflow at; OAuth redirect URIs, invoke URLs and "
        "login links are built from it. Unset, it follows host and port (a wildcard host "
        "becomes the loopback address).",
    )
    host: str = Field(default="127.0.0.1", description="Address `cardflow serve` binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port `cardflow serve` binds.")
    deny_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=parse_networks(DEFAULT_DENY_NETWORKS),
        description="Comma-separated CIDRs that cards may never connect to.",
    )
    allow_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(), description="Comma-separated CIDRs excepted from deny_networks."
    )
    max_response_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest upstream response body a card reads."
    )
    default_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a card waits for an upstream by default."
    )
    token_refresh_skew: float = Field(
        default=30.0, ge=0, description="Refresh access tokens this many seconds before expiry."
    )
    token_refresh_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Longest a token refresh may take; a call waiting for another process's "
        "refresh of the same connection waits about this long too.",
    )
    config_cache_seconds: float = Field(
        default=2.0, ge=0, description="How long a process trusts its cached connection config."
    )
    max_concurrent_runs: int = Field(
        default=64, ge=1, description="Flow runs executing at once in this process; more wait."
    )
    endpoint_timeout: float = Field(
        default=60.0, gt=0, description="Seconds an /invoke caller waits before getting 202."
    )
    run_retention_days: float = Field(
        default=30, gt=0, description="Run history older than this is deleted."
    )
    audit_retention_days: float = Field(
        default=365, gt=0, description="Audit log entries older than this (days) are deleted."
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="Seconds running flows get to finish on shutdown."
    )
    log_level: str = Field(default="INFO", description="Python logging level name.")
    metrics_public: bool = Field(
        default=False, description="/metrics answers without an API token (for a scraper)."
    )

    # -- queued runs (PostgreSQL): workers -------------------------------------------------
    embedded_worker: bool = Field(
        default=True,
        description="PostgreSQL: `cardflow serve` also executes queued runs (--no-worker "
        "turns it off).",
    )
    worker_concurrency: int = Field(
        default=8, ge=1, le=256, description="Queued runs one worker process executes at once."
    )
    worker_heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often a cardflow process (server, worker) says it is alive.",
    )
    worker_stalled_after: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="A process silent this long is taken for dead: its queued runs go on "
        "elsewhere, its in-process runs end as interrupted (keep it well above "
        "CARDFLOW_WORKER_HEARTBEAT_SECONDS).",
    )
    worker_sweep_seconds: int = Field(
        default=5,
        ge=1,
        le=30,
        description="How often (seconds, a divisor of 60 is best) workers look for runs whose "
        "worker died.",
    )

    # -- limits: every size, count and duration a caller or a flow author controls --------
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        description="Largest request body cardflow reads (REST API, web app, /invoke): "
        "counted while it streams in, before authentication; larger gets 413.",
    )
    max_nesting_depth: int = Field(
        default=64,
        ge=8,
        le=500,
        description="Deepest nesting of lists and objects accepted in JSON, YAML and XML "
        "(request bodies, flow files, upstream answers, parsed text).",
    )
    max_flow_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest flow document (as JSON; YAML aliases count each time used).",
    )
    max_flow_versions: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Most saved versions kept per flow (its version history); the oldest "
        "are dropped.",
    )
    max_for_each_items: int = Field(
        default=10_000,
        gt=0,
        description="Most items a For Each card loops over (a card may set a lower max_items).",
    )
    max_pages: int = Field(
        default=1000,
        gt=0,
        description="Most pages one paginating card (Get, Post, Raw Request with pagination) "
        "may fetch; its pagination.max_pages may not be higher. All its pages together are "
        "bounded by CARDFLOW_MAX_RESPONSE_BYTES and the run by CARDFLOW_MAX_RUN_SECONDS.",
    )
    max_cards_per_run: int = Field(
        default=50_000,
        gt=0,
        description="Most card executions in one run, nested cards and loop iterations counted.",
    )
    max_run_seconds: float = Field(
        default=3600.0, gt=0, description="Longest a run may take; it then fails."
    )
    max_recorded_cards: int = Field(
        default=1000,
        gt=0,
        description="Card executions recorded one by one per run; beyond, they are counted.",
    )
    max_run_state_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Queued runs (PostgreSQL): the most a run's progress (trigger and its "
        "cards' outputs so far) may take as JSON; a larger run fails rather than be kept.",
    )
    max_saved_data_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        description="With save_data: the most of one card's inputs or outputs kept (as JSON); "
        "larger values are kept as a truncated preview.",
    )
    expression_timeout: float = Field(
        default=2.0, gt=0, le=60, description="Longest one {{ }} expression may evaluate."
    )
    max_expression_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest text or value an expression may build (to_string, join, "
        "text interpolation and the like).",
    )
    max_expression_value_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="Largest value (as JSON, shared parts counted each time) an expression "
        "may build, e.g. by lists of itself.",
    )
    max_runs_per_flow: int = Field(
        default=16,
        ge=1,
        description="Runs of one flow executing at once in this process; more wait.",
    )
    max_queued_runs: int = Field(
        default=1000,
        ge=0,
        description="Runs waiting for a slot in this process; beyond, /invoke answers 503.",
    )
    max_queued_runs_per_flow: int = Field(
        default=100,
        ge=0,
        description="Runs of one flow waiting for a slot; beyond, /invoke answers 503.",
    )
    max_queued_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Request bodies held by waiting runs, together; beyond, /invoke answers 503.",
    )
    max_flow_depth: int = Field(
        default=8,
        ge=1,
        description="Flows calling cardflow's own /invoke URLs: how deep such calls may "
        "nest before cardflow answers 508 (Loop Detected).",
    )

    # -- single sign-on (OpenID Connect): off while oidc_discovery_url is unset ------------
    oidc_discovery_url: str | None = Field(
        default=None,
        description="The provider's discovery document (https://issuer/.well-known/"
        "openid-configuration). Set with the client id and secret, the login page offers "
        "single sign-on.",
    )
    oidc_client_id: str | None = Field(default=None, description="cardflow's client id there.")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="cardflow's client secret there (never shown or logged)."
    )
    oidc_provider_name: str = Field(
        default="single sign-on",
        max_length=100,
        description='Shown on the login page: "Log in with <name>".',
    )
    oidc_allowed_domains: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated email domains whose (verified) users may log in; "
        "empty: any domain.",
    )
    oidc_role_claim: str | None = Field(
        default=None,
        max_length=100,
        description="The ID token claim (a string or a list, e.g. groups) mapped to roles.",
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: claim value -> role (viewer, builder or admin), e.g. "
        '{"cardflow-admins": "admin"}. With several matches the highest role wins.',
    )
    oidc_default_role: str | None = Field(
        default="viewer",
        description="Role of an allowed user whose claim maps to no role; empty (or none) "
        "refuses such users.",
    )
    oidc_require_verified_email: bool = Field(
        default=True,
        description="false: let in an ID token that does not say email_verified (some "
        "Entra ID tenants never send it); an email_verified of false is refused always.",
    )
    oidc_extra_scopes: str = Field(
        default="",
        max_length=500,
        description="Scopes asked for besides openid email profile (e.g. groups).",
    )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_discovery_url and self.oidc_client_id and self.oidc_client_secret)

    @field_validator("oidc_allowed_domains", mode="before")
    @classmethod
    def _parse_domains(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError("expected a comma-separated list of email domains")
        return tuple(str(i).strip().lower().lstrip("@") for i in items if str(i).strip())

    @field_validator("oidc_role_map")
    @classmethod
    def _check_role_map(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 1000:
            raise ValueError("at most 1000 entries")
        for claim, role in value.items():
            if role not in ("viewer", "builder", "admin"):
                raise ValueError(
                    f"{claim!r} maps to {role!r}: choose viewer, builder or admin "
                    "(owners are made in cardflow, never by single sign-on)"
                )
        return value

    @field_validator("oidc_default_role", mode="before")
    @classmethod
    def _check_default_role(cls, value: object) -> str | None:
        if value is None or str(value).strip().lower() in ("", "none"):
            return None
        role = str(value).strip().lower()
        if role not in ("viewer", "builder", "admin"):
            raise ValueError("choose viewer, builder, admin or none")
        return role

    @field_validator("deny_networks", "allow_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> tuple[IPNetwork, ...]:
        if isinstance(value, str | list | tuple):
            return parse_networks(value)
        raise ValueError("expected a comma-separated list of CIDRs")

    @model_validator(mode="after")
    def _stalled_after_heartbeats(self) -> Self:
        if self.worker_stalled_after < 2 * self.worker_heartbeat_seconds:
            raise ValueError(
                "CARDFLOW_WORKER_STALLED_AFTER must be at least twice "
                "CARDFLOW_WORKER_HEARTBEAT_SECONDS, or live workers would be taken for dead"
            )
        return self

    # True when public_url was not given, so it was made from host and port.
    _public_url_defaulted: bool = PrivateAttr(default=False)

    @property
    def public_url_given(self) -> bool:
        """CARDFLOW_PUBLIC_URL (or public_url=) was set, not made from host and port."""
        return not self._public_url_defaulted

    @model_validator(mode="after")
    def _default_public_url(self) -> Self:
        if "public_url" not in self.model_fields_set:
            self._public_url_defaulted = True
            # a wildcard bind is reached on this machine at its loopback address
            wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
            self.public_url = http_url(wildcards.get(self.host, self.host), self.port)
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL to use, defaulting to SQLite under ``home``."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.home / 'cardflow.db').resolve()}"

    @property
    def key_file(self) -> Path:
        return self.home / "master.key"

    @property
    def own_origins(self) -> frozenset[tuple[str, int]]:
        """(host, port) pairs that reach this cardflow: its public URL and the address
        it binds (a loopback or wildcard bind is also reached as localhost and loopback)."""
        origins: set[tuple[str, int]] = set()
        public = urlsplit(self.public_url)
        if public.hostname:
            origins.add((public.hostname, public.port or _DEFAULT_PORTS.get(public.scheme, 80)))
        local = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""}  # noqa: S104
        hosts = {self.host}
        if self.host in local or self.host.startswith("127."):
            hosts |= local - {""}
        origins.update((host, self.port) for host in hosts)
        return frozenset(origins)


def http_url(host: str, port: int) -> str:
    """http://host:port, with an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def normalize_database_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
