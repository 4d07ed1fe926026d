"""`mailer serve`: the subscription pages, the feeds and the web archive over HTTP, with the
scheduler beside them; `mailer scheduler`: the scheduler alone."""

from __future__ import annotations

import logging

import click

from mailer.cli.shared import Invocation, pass_invocation
from mailer.core.stopping import asked_to_stop
from mailer.web.limits import SERVER_LIMITS


def _log_to_stderr() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@click.command()
@click.option("--host", help="The address to listen on (default: [web] host).")
@click.option("--port", type=click.IntRange(1, 65535), help="The port (default: [web] port).")
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Requests handled at once.",
)
@click.option(
    "--proxies",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    help="Reverse proxies in front to trust for X-Forwarded-For/-Proto.",
)
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Do not run the scheduler here (run `mailer scheduler` elsewhere instead).",
)
@pass_invocation
def serve(
    invocation: Invocation,
    host: str | None,
    port: int | None,
    threads: int,
    proxies: int,
    no_scheduler: bool,
) -> None:
    """Serve the subscription pages, the feeds and the web archive with waitress.

    Every page lives under the path of site_url (for https://www.example.org/commentaries/ the
    unsubscribe page is /commentaries/unsubscribe/TOKEN), so the links in emails work against
    this server directly or behind a proxy that keeps the path. Run `mailer build` first for the
    feeds and the archive. For production, see docs/web.md (waitress or gunicorn behind a proxy).
    The scheduler runs too (as `mailer scheduler` does), unless --no-scheduler.

    \b
    Examples:
      mailer serve
      mailer serve --host 0.0.0.0 --port 8080 --threads 16
    """
    import waitress  # only this command needs the server

    from mailer.web import url_prefix
    from mailer.wsgi import create_app

    newsletter = invocation.newsletter
    web = newsletter.config.web
    host = host or web.host
    port = port or web.port
    _log_to_stderr()
    # waitress warns at every request that waits for a thread: a line per request under load.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app(newsletter, proxies=proxies)
    shown = f"[{host}]" if ":" in host else host
    prefix = url_prefix(newsletter.config.newsletter.site_url)
    with asked_to_stop(interrupt=True) as stopping:
        scheduling = None
        if not no_scheduler:
            from mailer.scheduler.due import Scheduler
            from mailer.scheduler.loop import in_thread

            scheduling = in_thread(Scheduler(newsletter, stopping))
        click.echo(
            f"Serving {newsletter.config.newsletter.name} at http://{shown}:{port}{prefix}/ "
            "(Ctrl-C stops)."
        )
        # Returns once asked to stop, the requests in hand answered (waitress waits 5 s at most).
        waitress.serve(app, host=host, port=port, threads=threads, ident="mailer", **SERVER_LIMITS)
        stopping.set()
        if scheduling is not None:
            scheduling.join(timeout=0.5)  # a scheduler between looks ends at once: say nothing
            if scheduling.is_alive():
                click.echo(
                    "Stopping once the scheduler has recorded the messages in hand (asked again: "
                    "at once).",
                    err=True,
                )
                scheduling.join()
    click.echo("Stopped.")


@click.command()
@click.option("--once", is_flag=True, help="Do what is due now, then stop (for cron).")
@pass_invocation
def scheduler(invocation: Invocation, once: bool) -> None:
    """Do the work that falls due: start scheduled campaigns, rebuild the feeds and archive
    when an embargo ends, send weekly digests, and with [schedule] auto_publish send each
    commentary when its time comes.

    It looks every [schedule] interval (30 s), so due work starts within a minute. Its state is
    in the database: after a stop it does what came due meanwhile, except work older than
    [schedule] grace, which it marks missed and reports. Only one scheduler acts at a time;
    `mailer serve` runs one too, unless --no-scheduler. With --once, the exit status is 1 when
    something failed or was missed.

    \b
    Examples:
      mailer scheduler
      mailer scheduler --once
    """
    from mailer.scheduler.due import Scheduler
    from mailer.scheduler.loop import run

    newsletter = invocation.newsletter
    _log_to_stderr()
    with asked_to_stop() as stopping:
        looking = Scheduler(newsletter, stopping)
        if once:
            done = looking.tick()
            if not done.acted:
                click.echo("Another scheduler is acting on this database; nothing was done.")
            elif not done.notes:
                click.echo("Nothing is due.")
            if done.warnings:
                raise click.exceptions.Exit(1)
            return
        click.echo(f"Scheduler of {newsletter.config.newsletter.name} running (Ctrl-C stops).")
        run(looking)
    click.echo("Stopped.")
