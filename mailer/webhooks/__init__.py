"""Providers' webhooks: check that a request is authentic, then read it into Events.

One module per provider, each a `receive(incoming, credentials…)` that refuses (`Refused`) before
it reads anything it has not authenticated, and returns the normalised events with the provider's
own records kept (mailer.webhooks.events). Nothing here knows Flask or the database: the web
layer hands requests in, and mailer.store.events applies what comes out.
"""

PROVIDERS = ("mailgun", "sendgrid", "postmark", "ses", "generic")
