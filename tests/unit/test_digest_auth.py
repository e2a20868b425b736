"""The Digest auth's flow over cardflow's own requests, driven by hand (no network): what it
sends first, how it answers a challenge (checked against RFC 7616's formula computed here),
and the challenges it does not answer. Against a real Digest server:
tests/integration/test_digest_auth.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from cardflow.credentials.base import IncomingResponse
from cardflow.credentials.digest import MAX_ORIGINS, DigestAuth
from cardflow.net.transport import InboundResponse, OutboundRequest
from cardflow.redaction import MAX_ONE_TIME_SECRETS, REDACTED, SecretSet

NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"


def challenge(algorithm: str = "SHA-256", url: str = "https://api.test/x") -> InboundResponse:
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("WWW-Authenticate", 'Basic realm="other"')
    headers.add(
        "WWW-Authenticate",
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{NONCE}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    )
    return InboundResponse(401, CIMultiDictProxy(headers), b"", URL(url))


def ok(url: str = "https://api.test/x") -> InboundResponse:
    return InboundResponse(200, CIMultiDictProxy(CIMultiDict()), b"{}", URL(url))


def params(header: str) -> dict[str, str]:
    assert header.startswith("Digest ")
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,]+)', header)}


def expected_response(fields: dict[str, str], method: str, password: str) -> str:
    """RFC 7616 §3.4.1, qop auth."""
    name = fields["algorithm"].lower().replace("-", "")
    h = lambda text: hashlib.new(name, text.encode()).hexdigest()  # noqa: E731
    ha1 = h(f"{fields['username']}:{fields['realm']}:{password}")
    ha2 = h(f"{method}:{fields['uri']}")
    return h(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")


def start(
    auth: DigestAuth, request: OutboundRequest
) -> tuple[Generator[OutboundRequest, IncomingResponse, None], OutboundRequest]:
    flow = auth.auth_flow(request)
    return flow, next(flow)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_a_challenge_is_answered_once_with_the_same_body(algorithm: str) -> None:
    auth = DigestAuth("Mufasa", "Circle of Life")
    url = "https://api.test/dir/index.html?a=1%202&b=%2F"
    request = OutboundRequest("POST", URL(url), CIMultiDict({"X": "1"}), b'{"k": 1}')
    flow, first = start(auth, request)
    assert "Authorization" not in first.headers
    second = flow.send(challenge(algorithm, url))
    assert second is request and second.body == b'{"k": 1}'  # the same request, sent again
    fields = params(second.headers["Authorization"])
    assert fields["uri"] == URL(url).raw_path_qs == "/dir/index.html?a=1%202&b=/"  # as sent
    assert (fields["algorithm"], fields["qop"], fields["nc"]) == (algorithm, "auth", "00000001")
    assert fields["response"] == expected_response(fields, "POST", "Circle of Life")
    with pytest.raises(StopIteration):
        flow.send(challenge(algorithm, url))  # still refused: the 401 is the answer

    # the kept challenge is answered at once, its nonce count one up
    _, again = start(auth, OutboundRequest("GET", URL(url)))
    fields = params(again.headers["Authorization"])
    assert fields["nc"] == "00000002"
    assert fields["response"] == expected_response(fields, "GET", "Circle of Life")


def test_challenges_are_kept_per_origin() -> None:
    auth = DigestAuth("u", "p")
    flow, _ = start(auth, OutboundRequest("GET", URL("https://api.test/x")))
    flow.send(challenge())
    for other in ("https://other.test/x", "http://api.test/x", "https://api.test:8443/x"):
        _, first = start(auth, OutboundRequest("GET", URL(other)))
        assert "Authorization" not in first.headers, other
    _, same = start(auth, OutboundRequest("GET", URL("https://api.test/y")))
    assert params(same.headers["Authorization"])["uri"] == "/y"
    # bounded: the least recently used origins are forgotten
    for n in range(MAX_ORIGINS + 5):
        flow, _ = start(auth, OutboundRequest("GET", URL(f"https://h{n}.test/")))
        flow.send(challenge(url=f"https://h{n}.test/"))
    assert len(auth._by_origin) == MAX_ORIGINS


def test_a_challenge_from_another_origin_is_not_answered() -> None:
    """A 401 that comes after a redirect elsewhere: its challenge is not that origin's."""
    auth = DigestAuth("u", "p")
    flow, _ = start(auth, OutboundRequest("GET", URL("https://api.test/x")))
    with pytest.raises(StopIteration):
        flow.send(challenge(url="https://elsewhere.test/x"))
    _, later = start(auth, OutboundRequest("GET", URL("https://elsewhere.test/x")))
    assert "Authorization" not in later.headers


@pytest.mark.parametrize(
    "header",
    [
        'Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"',  # unknown algorithm
        'Digest realm="r", nonce="n", qop="auth-int"',  # auth-int only
        'Digest nonce="n", qop="auth"',  # no realm
        "Digest realm",  # malformed
        'Basic realm="r"',  # not Digest at all
    ],
)
def test_a_challenge_that_cannot_be_answered_ends_the_flow(header: str) -> None:
    auth = DigestAuth("u", "p")
    request = OutboundRequest("GET", URL("https://api.test/x"))
    flow, _ = start(auth, request)
    response = InboundResponse(
        401, CIMultiDictProxy(CIMultiDict({"WWW-Authenticate": header})), b"", request.url
    )
    with pytest.raises(StopIteration):
        flow.send(response)
    _, later = start(auth, OutboundRequest("GET", URL("https://api.test/x")))
    assert "Authorization" not in later.headers  # nothing unanswerable was kept


def test_the_password_is_its_secret_and_the_header_values_vary() -> None:
    auth = DigestAuth("u", "pass word")
    assert auth.sensitive_values() == ["pass word"] == auth.static_values()
    assert auth.added_headers == {"authorization"} and auth.header_values_vary
    assert auth.ready_headers() is None  # the generator is always driven
    sent = 'Digest username="u", realm="r", nonce="n", uri="/x", response="9f0a", nc=00000001'
    assert auth.one_time_values(sent) == ["9f0a"]


def test_a_work_keeps_a_bounded_number_of_one_time_values() -> None:
    secrets = SecretSet()
    for n in range(MAX_ONE_TIME_SECRETS + 10):
        secrets.add_one_time(f"{n:08x}")
    assert len(secrets.forms) == MAX_ONE_TIME_SECRETS
    assert secrets.redact_text("00000001 and 000003e7") == f"{REDACTED} and {REDACTED}"
