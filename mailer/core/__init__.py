"""What every part of mailer shares: errors, lifecycle, addresses, events, tokens, urls, config.

It imports nothing else of mailer."""
