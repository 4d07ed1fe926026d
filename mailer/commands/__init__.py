"""The `mailer` commands, one module per concern; `mailer.cli` gathers them into one group."""
