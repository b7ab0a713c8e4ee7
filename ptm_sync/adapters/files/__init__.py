"""Files on disk: modes of private files."""
