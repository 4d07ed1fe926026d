"""Providers' webhooks: check that a request is authentic, then read it into Events.

What every provider's webhook module (mailer/providers/<name>/webhook.py) shares: the request as
the web layer hands it in, the refusals, and reading JSON and times (base.py), and signatures
(signatures.py). A provider's `receive` refuses (`Refused`) before it reads anything it has not
authenticated, and returns the normalised events (mailer.core.events) with its own records kept.
Nothing here knows Flask or the database: mailer.store.events applies what comes out.
"""
