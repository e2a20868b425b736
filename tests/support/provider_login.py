"""Play the browser in an authorization-code flow against `OAuthServer`, one hop at a time.

Starting from where a browser would (cardflow's ``/api/v1/connections/{id}/authorize`` or the
provider's authorize URL), the helpers follow each redirect by hand, sign in at the provider's
``/login`` form, answer its consent form and go on to the client's redirect_uri. The client's
``Authorization`` header (its auth, too) is only sent to the origin of `start_url`: requests to
any other origin go without it. Cookies (the provider's session) live in the client's jar.
"""

from __future__ import annotations

import httpx

from tests.support.oauth_server import AUTHORIZE_PATH, LOGIN_PATH

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 20


def authorize_in_browser(
    client: httpx.Client,
    start_url: str,
    *,
    username: str = "alice",
    password: str = "wonderland",
    consent: bool = True,
) -> httpx.Response:
    """Run the flow to its end; return the last response (the callback's page, or whatever
    page stopped the flow: a 401 login form for a wrong password, a provider error page)."""
    outcome = _walk(client, start_url, username, password, consent, stop_at_callback=False)
    assert isinstance(outcome, httpx.Response)
    return outcome


def authorize_get_callback_url(
    client: httpx.Client,
    start_url: str,
    *,
    username: str = "alice",
    password: str = "wonderland",
    consent: bool = True,
) -> str:
    """Run the flow up to the provider's redirect back to the client; return that callback URL
    (with ``code`` and ``state``, or ``error``) without requesting it."""
    outcome = _walk(client, start_url, username, password, consent, stop_at_callback=True)
    assert isinstance(outcome, httpx.URL)
    return str(outcome)


def _walk(
    client: httpx.Client,
    start_url: str,
    username: str,
    password: str,
    consent: bool,
    *,
    stop_at_callback: bool,
) -> httpx.Response | httpx.URL:
    request = client.build_request("GET", start_url)
    home = _origin(request.url)
    signed_in = answered = False
    for _ in range(MAX_HOPS):
        response = _send(client, request, trusted=_origin(request.url) == home)
        url = request.url
        if response.status_code in REDIRECT_STATUSES:
            target = url.join(response.headers["location"])
            if stop_at_callback and url.path == AUTHORIZE_PATH and target.path != LOGIN_PATH:
                return target  # the provider sends the browser back to the client
            request = client.build_request("GET", target)  # as browsers do, even after a POST
        elif response.status_code == 200 and url.path == LOGIN_PATH and not signed_in:
            signed_in = True
            request = client.build_request(
                "POST", url, data={"username": username, "password": password}
            )
        elif response.status_code == 200 and url.path == AUTHORIZE_PATH and not answered:
            answered = True  # the consent form posts back to the same URL (same query)
            request = client.build_request(
                "POST", url, data={"confirm": "yes" if consent else "no"}
            )
        elif stop_at_callback:
            raise AssertionError(
                f"the flow stopped before the callback: {response.status_code} "
                f"{request.method} {url}\n{response.text[:500]}"
            )
        else:
            return response
    raise AssertionError(f"more than {MAX_HOPS} hops from {start_url}")


def _send(client: httpx.Client, request: httpx.Request, *, trusted: bool) -> httpx.Response:
    if trusted:
        return client.send(request, follow_redirects=False)
    request.headers.pop("Authorization", None)
    return client.send(request, auth=None, follow_redirects=False)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port
