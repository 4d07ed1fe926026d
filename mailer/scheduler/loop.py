"""Looking at what is due every [schedule] interval, until told to stop: in `mailer scheduler`
in the foreground, in `mailer serve` in a thread beside the web service."""

from __future__ import annotations

import logging
import threading

from mailer.scheduler.due import Scheduler

log = logging.getLogger("mailer.scheduler")


def run(scheduler: Scheduler) -> None:
    """Tick, wait, tick… until the scheduler's `stopping` is set. A failure of one look (the
    database down) is logged and the next look tries again: the state is in the database,
    nothing is lost."""
    interval = scheduler.newsletter.config.schedule.interval
    acting: bool | None = None

    def turn(acts: bool) -> None:
        """Said once each time it changes, not at every look, and before the look's work: a
        send can take long, and whoever watches the log should know who is sending."""
        nonlocal acting
        if acts != acting:
            log.info(
                "this scheduler acts on the due work"
                if acts
                else "another scheduler acts on this database; this one waits its turn"
            )
        acting = acts

    while not scheduler.stopping.is_set():
        try:
            scheduler.tick(turn)
        except Exception:  # a daemon: report, keep looking
            log.exception("the scheduler's look at due work failed; trying again")
        scheduler.stopping.wait(interval)


def in_thread(scheduler: Scheduler) -> threading.Thread:
    """The loop in a daemon thread; setting the scheduler's `stopping` ends it after the
    batches in hand of the campaign it is sending, if any."""
    thread = threading.Thread(target=run, args=(scheduler,), name="scheduler", daemon=True)
    thread.start()
    return thread
