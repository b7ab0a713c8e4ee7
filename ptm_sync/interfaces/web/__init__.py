"""The published pages, feeds and health endpoint served by `ptm-sync run`."""
