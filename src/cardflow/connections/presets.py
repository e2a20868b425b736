"""Provider presets: the catalogue of common services (``presets.yaml``, data shipped with
the package) and filling one in — its placeholders replaced by checked values — to get a
connection's auth type, config, allowed hosts and base URL.

A preset never holds a secret and is never special-cased in code: a provider's quirks are
options in its entry (``config.token_response_path``, ``scope_separator``,
``tokens_expire``), read by the same code every connection uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from yarl import URL

from cardflow.credentials.registry import AUTH_TYPES
from cardflow.errors import InvalidInput, PresetNotFound
from cardflow.net.hosts import normalize_allowed_hosts
from cardflow.net.urls import check_base_url, check_relative_url, parse_http_url

MAX_PARAMS = 20
MAX_PARAM_CHARS = 253  # a DNS name
MAX_QUERY_CHARS = 200
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,39})\}")
# Values a placeholder's pattern must refuse, whatever it is for: each would add a host,
# a port, a user, a path, a query or a fragment to the URL it is put in.
HOSTILE_VALUES = (
    "",
    "evil.example/x",
    "a/b",
    "a@evil.example",
    "evil.example:8443",
    "a?b=1",
    "a#b",
    "a b",
    "a\\b",
    "..",
    "a%2fb",
    "a\nb",
    "{x}",
)


class PresetPlaceholder(BaseModel):
    """A value the user fills in (``{okta_domain}``), checked against ``pattern``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    label: str = Field(min_length=1, max_length=80)
    pattern: str = Field(description="A regular expression the whole value must match.")
    example: str
    default: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _pattern_refuses_hostile_values(self) -> PresetPlaceholder:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"placeholder {self.name}: bad pattern ({exc})") from None
        for value in HOSTILE_VALUES:
            if compiled.fullmatch(value):
                raise ValueError(f"placeholder {self.name}: its pattern accepts {value!r}")
        for given in (self.example, self.default):
            if given is not None and not compiled.fullmatch(given):
                raise ValueError(f"placeholder {self.name}: {given!r} does not match its pattern")
        return self

    def accepts(self, value: str) -> bool:
        return len(value) <= MAX_PARAM_CHARS and re.fullmatch(self.pattern, value) is not None


class PresetTestRequest(BaseModel):
    """A cheap call that shows the connection works (``GET /user``), under the base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "POST", "HEAD"]
    path: str = Field(pattern=r"^/")


class Preset(BaseModel):
    """One service's connection, as the catalogue gives it (see presets.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    title: str = Field(min_length=1, max_length=100)
    auth_type: str
    description: str
    docs_url: str
    placeholders: tuple[PresetPlaceholder, ...] = ()
    config: dict[str, str | bool] = Field(default_factory=dict)
    scopes: tuple[str, ...] = ()
    scope_separator: Literal[" ", ","] = " "
    authorize_params: dict[str, str] = Field(default_factory=dict)
    base_url: str | None = None
    extra_allowed_hosts: tuple[str, ...] = ()
    tokens_expire: bool = Field(
        default=True,
        description="False: the provider's tokens come without expires_in (and without a "
        "refresh token); cardflow uses them until a 401, then asks for re-authorization.",
    )
    secret_help: str | None = None
    test_request: PresetTestRequest | None = None

    @field_validator("auth_type")
    @classmethod
    def _auth_type(cls, value: str) -> str:
        if value not in AUTH_TYPES:
            raise ValueError(f"auth_type must be one of: {', '.join(AUTH_TYPES)}")
        return value

    @field_validator("docs_url")
    @classmethod
    def _docs_url(cls, value: str) -> str:
        if parse_http_url(value).scheme != "https":
            raise ValueError("docs_url must be https")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        fields = AUTH_TYPES[self.auth_type].config.model_fields
        for key in self.config:
            if key not in fields:
                raise ValueError(f"config.{key}: not a field of {self.auth_type}")
            if key in AUTH_TYPES[self.auth_type].config.secret_fields:
                raise ValueError(f"config.{key}: a preset never holds a secret")
        if (self.scopes or self.scope_separator != " ") and "scope" not in fields:
            raise ValueError(f"scopes: {self.auth_type} has no scope")
        if self.authorize_params and "authorize_url" not in self.config:
            raise ValueError("authorize_params: the preset has no authorize_url")
        declared = {p.name for p in self.placeholders}
        if len(declared) != len(self.placeholders):
            raise ValueError("placeholders: a name is declared twice")
        used = set(_PLACEHOLDER.findall(" ".join(self._templates())))
        if used - declared:
            raise ValueError(f"placeholders: {', '.join(sorted(used - declared))} not declared")
        if declared - used:
            raise ValueError(f"placeholders: {', '.join(sorted(declared - used))} not used")
        return self

    def _templates(self) -> list[str]:
        texts = [v for v in self.config.values() if isinstance(v, str)]
        texts += [self.base_url or "", *self.authorize_params.values()]
        return [*texts, self.test_request.path if self.test_request else ""]

    def matches(self, words: list[str]) -> bool:
        text = f"{self.id} {self.title} {self.description}".lower()
        return all(word in text for word in words)


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    patterns: dict[str, str] = Field(default_factory=dict)  # YAML anchors, for its authors
    presets: tuple[Preset, ...]

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        ids = [p.id for p in self.presets]
        if len(set(ids)) != len(ids):
            raise ValueError("preset ids must be unique")
        return self


def read_catalogue(text: str) -> Catalogue:
    """Parse and check a catalogue (the shipped one, or one a test writes)."""
    return Catalogue.model_validate(yaml.safe_load(text))


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """The shipped catalogue, by id (read once)."""
    text = resources.files("cardflow.connections").joinpath("presets.yaml").read_text("utf-8")
    return {preset.id: preset for preset in read_catalogue(text).presets}


def get_preset(preset_id: object) -> Preset:
    found = presets().get(preset_id) if isinstance(preset_id, str) else None
    if found is None:
        raise PresetNotFound(
            f"There is no preset {preset_id!r}; list them with GET /api/v1/connection-presets "
            "or `cardflow connection presets`.",
            field="preset",
        )
    return found


def search_presets(query: str | None = None) -> list[Preset]:
    """Presets whose id, title or description hold every word of ``query``, by title."""
    if query is not None and len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is longer than {MAX_QUERY_CHARS} characters.", field="q")
    words = (query or "").lower().split()
    found = [preset for preset in presets().values() if preset.matches(words)]
    return sorted(found, key=lambda preset: preset.title.lower())


@dataclass(frozen=True)
class FilledPreset:
    """A preset with its placeholders filled: what creating a connection needs, but the
    fields only the user has (client_id, secrets)."""

    preset: Preset
    auth_type: str
    config: dict[str, Any]
    allowed_hosts: list[str]
    base_url: str | None
    test_request: PresetTestRequest | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset.id,
            "auth_type": self.auth_type,
            "config": self.config,
            "allowed_hosts": self.allowed_hosts,
            "base_url": self.base_url,
            "test_request": self.test_request.model_dump() if self.test_request else None,
            "docs_url": self.preset.docs_url,
        }


def fill_preset(preset: Preset, params: Mapping[str, object] | None) -> FilledPreset:
    """Put ``params`` into the preset's placeholders (each checked against its pattern;
    all the missing ones named at once) and derive its allowed hosts from the URLs."""
    values = _checked_params(preset, params or {})

    def put(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

    config: dict[str, Any] = {
        key: put(value) if isinstance(value, str) else value for key, value in preset.config.items()
    }
    if preset.scopes:
        config["scope"] = preset.scope_separator.join(preset.scopes)
    if preset.authorize_params:
        extra = {key: put(value) for key, value in preset.authorize_params.items()}
        config["authorize_url"] = str(URL(config["authorize_url"]).update_query(extra))
    base_url = check_base_url(put(preset.base_url)) if preset.base_url else None
    test_request = None
    if preset.test_request is not None:
        path = check_relative_url(put(preset.test_request.path))
        test_request = PresetTestRequest(method=preset.test_request.method, path=path)
    hosts: list[str] = []
    for url in [*(v for k, v in config.items() if k.endswith("_url")), base_url]:
        if isinstance(url, str) and url:
            parsed = parse_http_url(url)
            port = "" if parsed.explicit_port is None else f":{parsed.port}"
            hosts.append(f"{parsed.raw_host}{port}")
    hosts.extend(preset.extra_allowed_hosts)
    return FilledPreset(
        preset,
        preset.auth_type,
        config,
        normalize_allowed_hosts(hosts),
        base_url,
        test_request,
    )


def _checked_params(preset: Preset, params: Mapping[str, object]) -> dict[str, str]:
    if len(params) > MAX_PARAMS:
        raise InvalidInput(f"preset_params: at most {MAX_PARAMS}.", field="preset_params")
    declared = {p.name: p for p in preset.placeholders}
    for name in params:
        if name not in declared:
            which = ", ".join(declared) or "none"
            raise InvalidInput(
                f"preset_params.{name}: preset {preset.id!r} has no such placeholder "
                f"(its placeholders: {which}).",
                field=f"preset_params.{name}",
            )
    values: dict[str, str] = {}
    missing: list[PresetPlaceholder] = []
    for placeholder in preset.placeholders:
        value = params.get(placeholder.name)
        if value is None or value == "":
            if placeholder.default is None:
                missing.append(placeholder)
                continue
            value = placeholder.default
        field = f"preset_params.{placeholder.name}"
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be text.", field=field)
        value = value.strip()
        if not placeholder.accepts(value):
            raise InvalidInput(
                f"{field}: {value[:MAX_PARAM_CHARS]!r} is not a valid {placeholder.label} "
                f"(e.g. {placeholder.example}); give only that part, without https://, "
                "a path or a port.",
                field=field,
            )
        values[placeholder.name] = value
    if missing:
        named = "; ".join(f"{p.name} ({p.label}, e.g. {p.example})" for p in missing)
        raise InvalidInput(
            f"preset_params.{missing[0].name}: preset {preset.id!r} needs "
            f"{'a value' if len(missing) == 1 else 'values'} for: {named}.",
            field=f"preset_params.{missing[0].name}",
        )
    return values


def preset_connection(
    preset_id: object,
    params: Mapping[str, object] | None,
    *,
    auth_type: object = None,
    config: object = None,
    allowed_hosts: object = None,
    base_url: object = None,
    test_request: object = None,
) -> tuple[str, dict[str, Any], object, object, object]:
    """A new connection's auth type, config, allowed hosts, base URL and test request from
    a preset, with what the caller gave on top (its config fields win; its allowed_hosts,
    base_url and test_request, when given, replace the preset's). The preset's test
    request is its path under the base URL (kept relative: it follows a later base_url)."""
    filled = fill_preset(get_preset(preset_id), params)
    if auth_type not in (None, "", filled.auth_type):
        raise InvalidInput(
            f"auth_type: preset {filled.preset.id!r} is {filled.auth_type}; leave auth_type "
            "out or give that.",
            field="auth_type",
        )
    if config is not None and not isinstance(config, dict):
        raise InvalidInput("config must be an object.", field="config")
    merged = {**filled.config, **(config or {})}
    hosts = allowed_hosts if allowed_hosts else filled.allowed_hosts
    base = base_url if base_url is not None else filled.base_url
    probe = test_request if test_request is not None else preset_test_request(filled, base)
    return filled.auth_type, merged, hosts, base, probe


def preset_test_request(filled: FilledPreset, base_url: object) -> dict[str, str] | None:
    """The preset's test request as a connection's (``{"method", "url"}``, the url its
    path under the base URL), when the connection has a base URL to put it under."""
    if filled.test_request is None or not base_url:
        return None
    return {"method": filled.test_request.method, "url": filled.test_request.path}
