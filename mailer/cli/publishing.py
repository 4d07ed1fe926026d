"""Publishing: init, check, build and preview."""

from __future__ import annotations

import email
import email.policy
import webbrowser
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import click

from mailer.app import scaffold
from mailer.app.campaigns import journal_of, pace, template_of
from mailer.app.newsletter import Newsletter
from mailer.app.publishing import pending
from mailer.cli.sending import print_report, run_with_progress
from mailer.cli.shared import Invocation, confirm, count, pass_invocation
from mailer.content.commentary import Collection, Commentary, Issue
from mailer.core.errors import Problem, ProblemsError, RequestError, TemplateError
from mailer.core.output import write_atomically


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--with-theme", is_flag=True, help="Copy the default theme into templates/ to edit it."
)
def init(folder: Path, with_theme: bool) -> None:
    """Create a new newsletter folder: config.toml, commentaries/, subscribers/.

    The packaged theme is used unless --with-theme copies it into the folder.

    \b
    Example:
      mailer init ~/newsletters/weekly --with-theme
    """
    created = scaffold.create(folder, with_theme=with_theme)
    click.echo(f"Created the newsletter folder {folder}:")
    for path in created:
        click.echo(f"  {path}")
    click.echo(
        f"The example commentary {scaffold.EXAMPLE_COMMENTARY} is a draft (draft = true): it is "
        "never built or sent. Write your own, or remove that line to publish it."
    )
    click.echo(
        f"Next: edit {folder / 'config.toml'}, set MAILER_SECRET, then run "
        f"`mailer check` in {folder}."
    )


@click.command()
@pass_invocation
def check(invocation: Invocation) -> None:
    """Check config.toml, every commentary and the theme; print every problem.

    Problems are printed as FILE:LINE: MESSAGE. The exit status is 2 when anything is wrong;
    warnings alone leave it 0.

    \b
    Example:
      mailer check && mailer build
    """
    newsletter = invocation.newsletter
    collection = newsletter.commentaries(bodies=False)
    problems = _checked(newsletter, collection)
    for commentary in collection.embargoed(newsletter.clock()):
        click.echo(f"{newsletter.embargo_note(commentary)}: out of the feeds until then.")
    errors = [p for p in problems if not p.warning]
    warnings = len(problems) - len(errors)
    click.echo(
        f"Checked {invocation.config_path}, "
        f"{count(len(collection.commentaries), 'commentary', 'commentaries')} and the "
        f"theme: {count(len(errors), 'error')}, {count(warnings, 'warning')}."
    )
    if errors:
        raise click.exceptions.Exit(2)


def _checked(newsletter: Newsletter, collection: Collection) -> list[Problem]:
    """Every problem of the settings, the theme and the commentaries, printed on stderr."""
    problems: list[Problem] = []
    try:
        newsletter.secret()
    except ProblemsError as error:
        problems.extend(error.problems)
    problems.extend(newsletter.theme.problems())
    problems.extend(collection.problems)
    problems.extend(newsletter.published_record().corrections_unmarked(collection.published()))
    if not any(not p.warning for p in problems):
        problems.extend(_render_problems(newsletter, collection))
    for problem in problems:
        click.echo(str(problem), err=True)
    return problems


def _render_problems(newsletter: Newsletter, collection: Collection) -> list[Problem]:
    """Render every page and email, one at a time, letting each go: template errors and
    oversized emails. Each commentary is read whole once, for its page and its email alike."""
    problems: list[Problem] = []
    latest = collection.every_before(newsletter.config.series.latest)

    def whole_and_emailed(commentary: Commentary) -> Commentary:
        whole = newsletter.whole(commentary)
        issue = Issue((whole,), tuple(latest[commentary.slug]))
        warning = newsletter.size_warning(issue)
        if warning:
            problems.append(warning)
        return whole

    try:
        for _ in newsletter.render_files(collection, whole_and_emailed):
            pass
    except TemplateError as error:
        problems.extend(error.problems)
    return problems


@click.command()
@click.option("--list", "list_name", help="The list to send to (default: [delivery] list).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_invocation
def publish(invocation: Invocation, list_name: str | None, yes: bool) -> None:
    """Check, build, and send every released commentary not yet sent to the list, each once,
    the oldest first.

    Safe to run from cron, a CI job or a git hook any number of times: what went is not sent
    again, a send that stopped half-way is continued, and a run with nothing new says so. A
    commentary still embargoed waits for a run after its time. The exit status is 2 when a
    check fails (nothing is built or sent), 1 when a delivery failed.

    \b
    Example:
      mailer publish --yes
    """
    newsletter = invocation.newsletter
    collection = newsletter.commentaries()
    if any(not p.warning for p in _checked(newsletter, collection)):
        raise click.exceptions.Exit(2)
    _build(newsletter)
    list_name = list_name or newsletter.config.delivery.list
    # The scheduler's lock: another publish, or auto_publish, deciding at the same moment what
    # is unsent would send it a second time (PostgreSQL has no sending lock of its own).
    with newsletter.store.schedule.acting_alone() as alone:
        if not alone:
            click.echo("A scheduler or another `mailer publish` is acting; nothing was sent.")
            return
        whole = _send_unsent(newsletter, collection, list_name, yes)
    if not whole:
        raise click.exceptions.Exit(1)


def _send_unsent(newsletter: Newsletter, collection: Collection, list_name: str, yes: bool) -> bool:
    """Send each released commentary not sent to the list yet; False when a delivery failed."""
    todo = pending(newsletter, collection, list_name)
    if not todo:
        click.echo(f"Nothing to publish: every released commentary has gone to '{list_name}'.")
        return True
    make_backend = newsletter.backend_factory()
    slugs = ", ".join(p.commentary.slug for p in todo)
    confirm(
        f"Send {count(len(todo), 'commentary', 'commentaries')} to '{list_name}' ({slugs})?", yes
    )
    store = newsletter.store
    whole = True
    with store.only_sender():
        journal, _folded = journal_of(newsletter)
        for item in todo:
            campaign = item.campaign
            if campaign is None:
                commentary = item.commentary
                try:
                    campaign = store.campaigns.start(
                        commentary.slug,
                        list_name,
                        commentary.title,
                        newsletter.readers(Issue((commentary,))),
                    )
                except LookupError:
                    raise RequestError(
                        f"there is no list '{list_name}'; `mailer lists` shows them"
                    ) from None
                click.echo(f"Campaign {campaign.id}: “{commentary.title}” to '{list_name}'.")
            template = template_of(newsletter, campaign)
            report = run_with_progress(
                newsletter, template, campaign, pace(newsletter), make_backend, journal
            )
            whole = print_report(report) and whole
            if report.stopped:  # asked to stop: the campaigns after this one wait too
                break
    return whole


@click.command()
@pass_invocation
def build(invocation: Invocation) -> None:
    """Write the feeds and the web archive into the output folder.

    Each file is replaced in one step, unchanged files are left alone, and nothing is written
    when a commentary or template has an error. A commentary whose time (publish_at, else its
    date) is still to come is left out until a build after that time.

    \b
    Example:
      mailer build && ls public/
    """
    _build(invocation.newsletter)


def _build(newsletter: Newsletter) -> None:
    built = newsletter.build()
    written = built.written
    click.echo(
        f"Built {count(built.commentaries, 'commentary', 'commentaries')} into "
        f"{newsletter.config.paths.output}: {len(written.changed)} written, "
        f"{len(written.unchanged)} unchanged, {len(written.removed)} removed."
    )
    for commentary in built.embargoed:
        click.echo(f"Left out {newsletter.embargo_note(commentary)}.")


@click.command()
@click.argument("slugs", nargs=-1)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML part here.",
)
@click.option(
    "--text",
    "text_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the plain-text part here.",
)
@click.option(
    "--eml",
    "eml_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the whole message (headers and both parts) here.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a web browser.")
@click.option("--list", "list_name", default=None, help="The list the issue goes to (for List-Id).")
@pass_invocation
def preview(
    invocation: Invocation,
    slugs: tuple[str, ...],
    html_path: Path | None,
    text_path: Path | None,
    eml_path: Path | None,
    open_browser: bool,
    list_name: str | None,
) -> None:
    """Show the issue made of SLUGS exactly as a subscriber would receive it.

    The first slug leads in full; the others follow as title, authors and key points. With no
    slug, the newest published commentary. The recipient is reader@example.org. With no file
    option, all three files go into the preview/ folder beside config.toml.

    \b
    Example:
      mailer preview stalemate --html /tmp/issue.html --open
    """
    newsletter = invocation.newsletter
    issue = newsletter.issue(slugs)
    rendered = newsletter.render(issue)
    warning = rendered.size_warning()
    if warning:
        click.echo(str(warning), err=True)
    for commentary in issue.commentaries:
        if note := newsletter.embargo_note(commentary):
            click.echo(f"Note: {note}.")
    list_name = list_name or newsletter.config.delivery.list
    message_bytes = newsletter.message_template(rendered, list_name).personalise(
        newsletter.preview_recipient()
    )
    message = email.message_from_bytes(message_bytes, policy=email.policy.default)
    default = newsletter.config.folder / "preview" / issue.lead.slug
    if not (html_path or text_path or eml_path):
        text_path, eml_path = default.with_suffix(".txt"), default.with_suffix(".eml")
        html_path = default.with_suffix(".html")
    elif open_browser and not html_path:
        html_path = default.with_suffix(".html")
    outputs = {
        html_path: _part(message, "html").encode("utf-8"),
        text_path: _part(message, "plain").encode("utf-8"),
        eml_path: message_bytes,
    }
    click.echo(f"Subject: {issue.subject}")
    for path, data in outputs.items():
        if path is not None:
            write_atomically(path, data)
            click.echo(f"Wrote {path} ({len(data) / 1024:.1f} KB)")
    if open_browser and html_path and not webbrowser.open(html_path.resolve().as_uri()):
        click.echo(f"No web browser could be started here; open {html_path} yourself.")


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    if body is None:
        raise RuntimeError(f"the message has no text/{subtype} part")
    return str(cast(EmailMessage, body).get_content())
