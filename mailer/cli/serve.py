"""`mailer serve`: the subscription pages, the feeds and the web archive over HTTP."""

from __future__ import annotations

import logging

import click

from mailer.cli.shared import Invocation, pass_invocation
from mailer.web.limits import SERVER_LIMITS


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
@pass_invocation
def serve(
    invocation: Invocation, host: str | None, port: int | None, threads: int, proxies: int
) -> None:
    """Serve the subscription pages, the feeds and the web archive with waitress.

    Every page lives under the path of site_url (for https://www.example.org/commentaries/ the
    unsubscribe page is /commentaries/unsubscribe/TOKEN), so the links in emails work against
    this server directly or behind a proxy that keeps the path. Run `mailer build` first for the
    feeds and the archive. For production, see docs/web.md (waitress or gunicorn behind a proxy).

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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # waitress warns at every request that waits for a thread: a line per request under load.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app(newsletter, proxies=proxies)
    shown = f"[{host}]" if ":" in host else host
    prefix = url_prefix(newsletter.config.newsletter.site_url)
    click.echo(
        f"Serving {newsletter.config.newsletter.name} at http://{shown}:{port}{prefix}/ "
        "(Ctrl-C stops)."
    )
    waitress.serve(app, host=host, port=port, threads=threads, ident="mailer", **SERVER_LIMITS)
