"""``cardflow worker``: execute queued runs (PostgreSQL)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.text import Text

from cardflow.app import Cardflow
from cardflow.cli._common import JsonOpt, console, fail, open_cardflow, print_json, want_json
from cardflow.errors import ConfigurationError


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Runs executed at once (default CARDFLOW_WORKER_CONCURRENCY, 8).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics at http://HOST:PORT/metrics "
            "(behind an API token unless CARDFLOW_METRICS_PUBLIC=1).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics listen on (with --metrics-port).")
    ] = "127.0.0.1",
    json_output: JsonOpt = False,
) -> None:
    """Execute queued runs: any number of workers, on any machines sharing the PostgreSQL
    database and the master key (`cardflow serve` runs one too, unless --no-worker).

    SIGTERM or Ctrl-C stops it: it takes no new run, and the runs still going after
    CARDFLOW_SHUTDOWN_GRACE seconds go back to the queue, where another worker goes on
    from their last completed card. A worker that dies (kill -9, a lost machine) is
    noticed after CARDFLOW_WORKER_STALLED_AFTER seconds, and its runs go on elsewhere.

    Its runs, card calls and token requests are counted in the worker itself:
    --metrics-port serves them for Prometheus to scrape.

    Example: cardflow worker --concurrency 16 --metrics-port 9464
    """
    as_json = want_json(json_output)
    overrides = {"worker_concurrency": concurrency} if concurrency is not None else {}
    with open_cardflow(as_json, **overrides) as cf:
        if cf.db.is_sqlite:
            fail(
                ConfigurationError(
                    "cardflow worker needs PostgreSQL (set CARDFLOW_DATABASE_URL="
                    "postgresql://…): with the embedded SQLite database, `cardflow serve` "
                    "executes every run itself.",
                    field="CARDFLOW_DATABASE_URL",
                ),
                as_json,
            )
        from cardflow.logs import configure_logging
        from cardflow.queue import process_name

        configure_logging(cf.settings.log_level)
        name = process_name()
        metrics_url = None
        if metrics_port is not None:
            from cardflow.cli.worker_metrics import serve_metrics

            try:
                server = serve_metrics(cf, metrics_host, metrics_port)
            except OSError as exc:
                fail(
                    ConfigurationError(
                        f"The metrics cannot listen on {metrics_host}:{metrics_port} "
                        f"({exc.strerror or exc}); choose another --metrics-port.",
                        field="metrics_port",
                    ),
                    as_json,
                )
            metrics_url = f"http://{metrics_host}:{server.server_port}/metrics"
        if as_json:
            print_json(
                {
                    "worker": name,
                    "concurrency": cf.settings.worker_concurrency,
                    "metrics": metrics_url,
                    "status": "started",
                }
            )
        else:
            console().print(
                Text.assemble(
                    "cardflow worker ",
                    (name, "bold"),
                    f" executing queued runs, {cf.settings.worker_concurrency} at a time "
                    "(Ctrl-C or SIGTERM stops it)",
                    f"; metrics at {metrics_url}" if metrics_url else "",
                ),
                soft_wrap=True,
            )
        asyncio.run(_work(cf, name))


async def _work(cf: Cardflow, name: str) -> None:
    from cardflow.queue import RunQueue, stop_worker

    cf.processes.sweeps = True
    await asyncio.to_thread(cf.processes.ensure)
    queue = RunQueue(cf.settings, cf.engine, cf.scheduler)
    await queue.open()
    cf.engine.use_queue(queue)
    working = asyncio.create_task(
        queue.supervise(concurrency=cf.settings.worker_concurrency, name=name)
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await asyncio.wait(
            [working, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        await stop_worker(working, cf.settings.shutdown_grace)
        await cf.engine.shutdown(cf.settings.shutdown_grace)
        await asyncio.to_thread(cf.run_writer.flush)
        await queue.close()
        await cf.aclose()
