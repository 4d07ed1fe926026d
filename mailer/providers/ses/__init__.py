"""The ses provider."""
