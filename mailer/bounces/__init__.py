"""Bounces that arrive by mail: the mailbox they land in, what each message says, one pass over
them (`mailer bounces check`). What they say is recorded as webhook events are
(mailer.store.events), so a bounce by mail and one by webhook count alike."""
