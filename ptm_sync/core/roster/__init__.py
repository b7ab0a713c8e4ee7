"""The roster, the pure part: CSV tables, OneRoster exports, the merged roster (DESIGN §8)."""
