"""How messages leave: the backend interface, and the transports every provider shares."""
