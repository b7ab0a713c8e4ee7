"""Calendar connectors: one module per calendar system behind one protocol (base.py)."""
