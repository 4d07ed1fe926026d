"""The texts of the web service's answers written in Python (the messages, form errors and JSON
errors people read), in the language of the answer (Service.language). `_` and `ngettext` are
the names `pybabel extract` looks for (README, "Languages")."""

from __future__ import annotations

from mailer.render import i18n
from mailer.web.service import service


def _(message: str, **values: object) -> str:
    """`message` in the answer's language, its `%(name)s` placeholders filled from `values`."""
    text = i18n.language(service().language()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, num: int, **values: object) -> str:
    """The form of the message for `num` (its `%(num)d`) in the answer's language."""
    text = i18n.language(service().language()).ngettext(singular, plural, num)
    return text % {"num": num, **values}
