"""Periodic jobs: the registry, the in-process runner of ``serve`` and ``worker``.

Each job is a service function ``(ctx) -> int`` (how many things it did) that is
safe to run twice at once: the database, not this runner, guarantees that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from creditledger.domain.errors import CreditLedgerError
from creditledger.services.context import Context
from creditledger.services.invoices import run_invoice_retries, run_invoices
from creditledger.services.notices import deliver_due, notify_expiring, purge_notices
from creditledger.services.payments import reconcile_payments
from creditledger.services.recharge import run_auto_recharge
from creditledger.services.sessions import purge_ended_sessions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[Context], int]
    every_seconds: float
    help: str


JOBS: dict[str, Job] = {}


def register(job: Job) -> None:
    JOBS[job.name] = job


class JobRunner:
    """Runs every registered job on its own timer thread until ``stop()``."""

    def __init__(self, ctx: Context, jobs: dict[str, Job] | None = None) -> None:
        self.ctx = ctx
        self.jobs = dict(jobs if jobs is not None else JOBS)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for job in self.jobs.values():
            thread = threading.Thread(
                target=self._loop, args=(job,), name=f"job-{job.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, job: Job) -> None:
        while not self._stop.wait(job.every_seconds):
            try:
                done = job.run(self.ctx)
                if done:
                    log.info("job %s did %d", job.name, done)
            except CreditLedgerError as exc:
                log.warning("job %s: %s", job.name, exc.message)
            except Exception:
                log.exception("job %s failed", job.name)


def _expire(ctx: Context) -> int:
    from creditledger.services.expiry import expire_credits

    return expire_credits(ctx)


register(Job("expire", _expire, 60.0, "Write off expired credit after the late-arrival window."))
register(
    Job(
        "auto_recharge",
        run_auto_recharge,
        every_seconds=3,
        help="Charge the saved card of teams whose credit fell below their threshold.",
    )
)
register(
    Job(
        "invoices",
        run_invoices,
        every_seconds=300,
        help="Open last month's invoices once its late-arrival window closed; charge them.",
    )
)
register(
    Job(
        "invoice_retries",
        run_invoice_retries,
        every_seconds=600,
        help="Charge again the invoices whose earlier charge failed, on the retry schedule.",
    )
)
register(
    Job(
        "web_sessions",
        purge_ended_sessions,
        every_seconds=3600,
        help="Forget web sessions that expired or were revoked more than a week ago.",
    )
)
register(
    Job(
        "reconcile_payments",
        reconcile_payments,
        every_seconds=600,
        help="Grant recent succeeded payments whose webhook never arrived (exactly once).",
    )
)
register(
    Job(
        "notify_expiring",
        notify_expiring,
        every_seconds=3600,
        help="Tell teams, once per grant, of credit that expires within 7 days.",
    )
)
register(
    Job(
        "deliver_notifications",
        deliver_due,
        every_seconds=5,
        help="Send the notices that are due to teams' webhooks; try failed ones again.",
    )
)
register(
    Job(
        "notices_log",
        purge_notices,
        every_seconds=3600,
        help="Forget delivered and failed notices older than 30 days.",
    )
)
