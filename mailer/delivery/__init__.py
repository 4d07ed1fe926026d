"""How messages leave: one module per backend behind the small interface in base.py."""
