"""The postmark provider."""
