"""The scheduler: the work that falls due by itself (scheduled campaigns, embargoes lifting,
auto_publish, weekly digests), done by `mailer scheduler` and by `mailer serve`."""
