"""The applier (the one writer of meetings), its loader and the waiting list."""
