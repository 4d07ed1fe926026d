"""CSV import of subscribers: a reader process checks rows, the writer merges them in."""
