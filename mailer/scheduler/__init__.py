"""The scheduler: the work that falls due by itself (scheduled campaigns, embargoes lifting,
auto_publish, weekly digests, the bounce mailbox, welcome emails), done by `mailer scheduler`
and by `mailer serve`."""
