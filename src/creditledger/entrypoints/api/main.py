"""The ASGI application factory that ``uvicorn`` (and ``creditledger serve``) load."""

from __future__ import annotations

import gc
import sys

from fastapi import FastAPI

from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app

SWITCH_INTERVAL_SECONDS = 0.0005
"""How long a busy thread (a usage batch being charged) may keep the interpreter before
the event loop gets it back; Python's default of 5 ms is added to every authorization
that arrives while a batch is being charged (docs/decisions/0019)."""

GC_THRESHOLDS = (50_000, 20, 100)
"""The collector's thresholds in a server process (Python's are 700, 10, 10). A usage
batch builds tens of thousands of short-lived containers; with the defaults, enough of
them outlived a young collection to set off a full one every second or two while
batches were charged, each holding every request 15–100 ms (docs/decisions/0032)."""


def app_factory() -> FastAPI:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    ctx = build_context()
    app = create_app(ctx, run_jobs=ctx.settings.run_jobs_in_process)
    # What the process built to start (about 200,000 objects: the framework, the routes,
    # the schemas) lives as long as the process: leaving it out of the collector's full
    # passes takes ~60 ms pauses off the requests that happen to trigger one.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return app
