"""allowed_hosts patterns: parsing and canonical form, matching, and what counts as widening."""

from __future__ import annotations

import pytest
from yarl import URL

from cardflow.errors import HostNotAllowed
from cardflow.net.hosts import (
    MAX_ALLOWED_HOSTS,
    AllowedHosts,
    normalize_allowed_hosts,
    parse_host_pattern,
    widened,
)


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        ("api.example.com", "api.example.com"),
        ("API.Example.COM.", "api.example.com"),  # case and the root dot do not matter
        ("  api.example.com\t", "api.example.com"),  # surrounding blanks are trimmed
        ("*.Example.com", "*.example.com"),
        ("*.example.com:8443", "*.example.com:8443"),
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("::1", "[::1]"),  # a bare IPv6 address gets its brackets
        ("[::1]:80", "[::1]:80"),
        ("bücher.de", "xn--bcher-kva.de"),  # IDNA, as the host appears in a URL
    ],
)
def test_entries_are_written_in_one_canonical_form(entry: str, canonical: str) -> None:
    assert str(parse_host_pattern(entry)) == canonical


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "   ",
        "*",  # "any host" is the empty list, not a wildcard
        "*.",
        "*.com",  # a wildcard needs a domain with a dot
        "*.*.example.com",
        "a*b.com",
        "api.*.com",
        "http://api.example.com",
        "api.example.com/path",
        "user@api.example.com",
        "api.example.com?x",
        "api example.com",
        "api.example.com:99999",
        "api.example.com:http",
        "a\x01b.com",  # control characters are refused, not silently dropped
        "a\x7fb.com",
        "a\x00b.com",
        "a\x85b.com",
        "api\nexample.com",
        "*.[::1]",
    ],
)
def test_invalid_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_host_pattern(entry)
    with pytest.raises(ValueError):
        normalize_allowed_hosts([entry])


def test_normalize_dedupes_and_checks_the_shape() -> None:
    assert normalize_allowed_hosts(None) == []
    assert normalize_allowed_hosts(["B.com", "b.com.", "*.b.com"]) == ["b.com", "*.b.com"]
    with pytest.raises(ValueError):
        normalize_allowed_hosts("api.example.com")  # a string is not a list
    with pytest.raises(ValueError):
        normalize_allowed_hosts([42])
    with pytest.raises(ValueError, match=str(MAX_ALLOWED_HOSTS)):
        normalize_allowed_hosts([f"h{i}.example.com" for i in range(MAX_ALLOWED_HOSTS + 1)])


@pytest.mark.parametrize(
    ("entries", "url", "allowed"),
    [
        (["api.example.com"], "https://api.example.com/x", True),
        (["api.example.com"], "https://API.EXAMPLE.COM./x", True),
        (["api.example.com"], "http://api.example.com:8080/", True),  # no port: any port
        (["api.example.com"], "https://example.com/", False),
        (["api.example.com"], "https://api.example.com.evil.test/", False),
        (["api.example.com"], "https://evilapi.example.com/", False),
        (["*.example.com"], "https://a.example.com/", True),
        (["*.example.com"], "https://a.b.example.com/", True),
        (["*.example.com"], "https://example.com/", False),  # not the domain itself
        (["*.example.com"], "https://badexample.com/", False),
        (["*.example.com"], "https://example.com.evil.test/", False),
        (["api.example.com:8443"], "https://api.example.com:8443/", True),
        (["api.example.com:8443"], "https://api.example.com/", False),
        (["api.example.com:443"], "https://api.example.com/", True),  # the scheme's port
        (["api.example.com:80"], "https://api.example.com/", False),
        (["127.0.0.1"], "http://localhost/", False),  # names are not resolved
        (["127.0.0.1"], "http://[::ffff:127.0.0.1]/", False),
        (["[::1]:8080"], "http://[::1]:8080/", True),
        (["xn--bcher-kva.de"], "https://bücher.de/", True),
        (["a.test", "*.b.test"], "https://x.b.test/", True),
    ],
)
def test_matching(entries: list[str], url: str, allowed: bool) -> None:
    hosts = AllowedHosts(normalize_allowed_hosts(entries), "conn")
    assert hosts.allows(URL(url)) is allowed
    if allowed:
        hosts.check(URL(url))
    else:
        with pytest.raises(HostNotAllowed) as info:
            hosts.check(URL(url))
        assert info.value.type == "host_not_allowed"
        assert "Nothing was sent" in info.value.message


def test_an_empty_list_allows_any_host() -> None:
    hosts = AllowedHosts([], "conn")
    assert not hosts
    hosts.check(URL("https://anything.test/"))  # does not raise


@pytest.mark.parametrize(
    ("before", "after", "wider"),
    [
        (["a.test"], ["a.test"], []),
        (["a.test", "b.test"], ["a.test"], []),  # narrowing
        (["a.test"], [], ["*"]),  # any host is wider than any list
        ([], [], []),
        ([], ["a.test"], []),  # nothing is wider than any host
        (["a.test"], ["a.test", "b.test"], ["b.test"]),
        (["a.test"], ["a.test:8443"], []),  # a port narrows
        (["a.test:8443"], ["a.test"], ["a.test"]),  # dropping the port widens
        (["a.test:8443"], ["a.test:9443"], ["a.test:9443"]),
        (["*.a.test"], ["x.a.test", "*.y.a.test"], []),
        (["*.a.test"], ["a.test"], ["a.test"]),  # the domain itself is not under it
        (["a.test"], ["*.a.test"], ["*.a.test"]),
        (["x.a.test"], ["*.a.test"], ["*.a.test"]),
        (["*.a.test:443"], ["*.a.test"], ["*.a.test"]),
        (["*.a.test"], ["*.a.test:443"], []),
    ],
)
def test_widened(before: list[str], after: list[str], wider: list[str]) -> None:
    assert widened(before, after) == wider
