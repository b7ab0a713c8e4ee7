"""`ptm-sync demo`: the whole story on embedded parts."""
