"""The send engine: campaigns sent through a backend, recorded in the store."""
