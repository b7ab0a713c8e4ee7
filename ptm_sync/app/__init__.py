"""Use cases, one transaction each: load values, call the core, write (DESIGN §2)."""
