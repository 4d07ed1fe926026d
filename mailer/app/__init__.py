"""The newsletter put together: the one place that reads config.toml and picks concrete parts."""
