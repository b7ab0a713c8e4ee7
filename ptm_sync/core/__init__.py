"""The pure core (DESIGN §2): domain values and every rule, no I/O and no clock."""
