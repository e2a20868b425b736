"""A connection's base_url and cards' relative URLs: the rule is that a relative URL is a
path appended to base_url's path, and nothing in it can reach another origin or climb out."""

from __future__ import annotations

import pytest

from cardflow.net.urls import check_base_url, resolve_url

BASE = "https://api.example.com/v1"


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("/user", "https://api.example.com/v1/user"),
        ("user", "https://api.example.com/v1/user"),
        ("repos/a/b?per_page=5", "https://api.example.com/v1/repos/a/b?per_page=5"),
        ("/users/@me", "https://api.example.com/v1/users/@me"),
        ("/a:b", "https://api.example.com/v1/a:b"),
        ("/%2F%2Fevil.example", "https://api.example.com/v1/%2F%2Fevil.example"),
        ("https://other.example/x", "https://other.example/x"),  # absolute: as it is
    ],
)
def test_relative_urls_resolve_under_the_base(url: str, resolved: str) -> None:
    assert str(resolve_url(url, BASE)) == resolved
    assert str(resolve_url(url, BASE + "/")) == resolved


@pytest.mark.parametrize(
    "url",
    [
        "//evil.example/x",
        "///evil.example",
        "\\\\evil.example\\x",
        "/\\evil.example",
        "../x",
        "/v1/../../x",
        "/./x",
        "%2e%2e/x",
        "/a/%2E%2e/b",
        "/a/..%2f..%2fx",
        "javascript:alert(1)",
        "evil.example:443/x",
        "ftp://evil.example/x",
        "/a\r\nHost: evil.example",
    ],
)
def test_tricks_cannot_leave_the_base(url: str) -> None:
    with pytest.raises(ValueError):
        resolve_url(url, BASE)


def test_a_relative_url_without_a_base_url_says_so() -> None:
    with pytest.raises(ValueError, match="no base_url"):
        resolve_url("/user", None)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("api.example.com", "absolute"),
        ("ftp://api.example.com", "absolute"),
        ("https://u:p@api.example.com", "user name"),
        ("https://api.example.com/v1?x=1", "query"),
        ("https://api.example.com/v1#x", "query"),
        ("https://" + "a" * 2100 + ".com", "longer"),
    ],
)
def test_bad_base_urls(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_base_url(value)


def test_base_url_is_kept_without_a_trailing_slash() -> None:
    assert check_base_url("https://api.example.com/v1/") == "https://api.example.com/v1"
