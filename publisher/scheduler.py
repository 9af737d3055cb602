"""`publisher schedule`: APScheduler jobs that call pipeline functions, nothing else.

Two triggers, one job: every `schedule.build_every` minutes (and once at start) and at each
firing of `newsletter.schedule`, run `pipeline.run_once` — the same scan, feeds, resume,
alerts and digest-if-due as a cron `publisher run`, so the two ways of operating publisher
behave identically. Jobs run one at a time. SIGTERM or SIGINT stops taking new work; a send
in progress finishes the message in flight, records it, and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone

from .config import Config
from .cron import cron_trigger
from .errors import LockedError, PublisherError
from .pipeline import run_once

log = logging.getLogger(__name__)


class Service:
    def __init__(self, config: Config):
        self.config = config
        self.stop = threading.Event()
        self.runs = 0
        self.failures = 0
        self.scheduler = None

    def job(self, reason: str) -> None:
        """One run. A failure is logged and the job simply runs again at its next firing."""

        if self.stop.is_set():
            return
        self.runs += 1
        try:
            report = run_once(self.config, stop=self.stop)
        except LockedError as e:
            log.info("%s run skipped: %s", reason, e)
            return
        except PublisherError as e:
            self.failures += 1
            log.error("%s run failed: %s (retried at the next firing)", reason, e)
            return
        except Exception:  # a bug: keep the traceback, keep the service alive
            self.failures += 1
            log.exception("%s run crashed (retried at the next firing)", reason)
            return
        for problem in report.problems:
            log.warning("%s", problem)
        for line in report.lines:
            log.info("%s run: %s", reason, line)

    def shutdown(self, signum=None, _frame=None) -> None:
        if signum is not None:
            log.info("received %s: finishing the message in flight, then stopping",
                     signal.Signals(signum).name)
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def serve(self) -> int:
        # lazy: APScheduler's scheduler is ~55 ms, paid when the service starts, not by importers
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.interval import IntervalTrigger


        config = self.config
        executor = ThreadPoolExecutor(1)  # one run at a time
        self.scheduler = BlockingScheduler(
            timezone=config.tz,
            executors={"default": executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        self.scheduler.add_job(
            self.job, IntervalTrigger(minutes=config.schedule.build_every, timezone=config.tz),
            args=["build"], id="build", next_run_time=datetime.now(timezone.utc),
        )
        self.scheduler.add_job(
            self.job, cron_trigger(config.newsletter.schedule, config.tz), args=["digest"], id="digest",
        )
        signal.signal(signal.SIGTERM, self.shutdown)
        signal.signal(signal.SIGINT, self.shutdown)
        log.info("scheduling: run every %d min, digests on '%s' (%s); stop with SIGTERM",
                 config.schedule.build_every, config.newsletter.schedule, config.newsletter.timezone)
        self.scheduler.start()  # blocks until shutdown()
        # shutdown(wait=False) returned at once; let the job in flight finish its message.
        executor.shutdown(wait=True)
        log.info("stopped after %d runs (%d failed)", self.runs, self.failures)
        return 0


def run_service(config: Config) -> int:
    return Service(config).serve()
