"""The mailgun provider."""
