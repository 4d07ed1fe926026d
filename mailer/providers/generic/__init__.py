"""The generic provider."""
