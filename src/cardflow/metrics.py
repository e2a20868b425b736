"""Prometheus metrics (prometheus_client): runs, card calls, token requests.

Counted in the process doing the work. With ``cardflow serve --processes N`` the processes
share a directory (``PROMETHEUS_MULTIPROC_DIR``, set by serve before it starts them) and
/metrics adds them up. Queue depth, the oldest job's age and the live workers are read from
the database when /metrics is scraped, so they are the same whichever process answers.

Label values are bounded: flows, cards and connections by what exists; upstream hosts
to the first ``MAX_HOSTS`` seen by a process, later ones counted as ``other``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import REGISTRY, Collector

MAX_HOSTS = 200
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

RUNS_STARTED = Counter(
    "cardflow_runs_started_total",
    "Runs started (recorded), by flow and trigger.",
    ["flow", "trigger"],
)
RUNS_FINISHED = Counter(
    "cardflow_runs_finished_total", "Runs that ended, by flow and status.", ["flow", "status"]
)
RUN_SECONDS = Histogram(
    "cardflow_run_duration_seconds", "From a run's start to its end.", ["flow"], buckets=_SECONDS
)
CARD_CALLS = Counter(
    "cardflow_card_calls_total",
    "HTTP card calls in runs and card tests, by card, upstream host and status class "
    "(2xx…5xx, or error when no answer came).",
    ["card", "host", "status_class"],
)
CARD_SECONDS = Histogram(
    "cardflow_card_duration_seconds", "How long a card took, by card.", ["card"], buckets=_SECONDS
)
TOKEN_REQUESTS = Counter(
    "cardflow_token_requests_total",
    "Token requests to providers, by connection and outcome (ok, refused, failed).",
    ["connection", "outcome"],
)

_hosts: set[str] = set()
_hosts_lock = threading.Lock()


def host_label(url: object) -> str:
    """The host of a card's URL as a label value (bounded: see MAX_HOSTS)."""
    if not isinstance(url, str):
        return "unknown"
    try:
        host = urlsplit(url).hostname or "unknown"
    except ValueError:
        return "unknown"
    if host in _hosts:
        return host
    with _hosts_lock:
        if len(_hosts) >= MAX_HOSTS:
            return "other"
        _hosts.add(host)
    return host


def status_class(status_code: int | None) -> str:
    return f"{status_code // 100}xx" if status_code else "error"


class _Together:
    """Several collectors read as one registry (a scrape never changes the global one)."""

    def __init__(self, *parts: Collector | CollectorRegistry) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


def exposition(*extra: Collector) -> tuple[bytes, str]:
    """The metrics as Prometheus text: this process's (or every serving process's, with
    PROMETHEUS_MULTIPROC_DIR), and ``extra``'s."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    together = _Together(registry, *extra)
    return generate_latest(together), CONTENT_TYPE_LATEST
