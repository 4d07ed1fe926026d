"""mailer: Markdown commentaries to an inlined-CSS email and RSS, Atom and JSON feeds."""

__version__ = "0.1.0"
