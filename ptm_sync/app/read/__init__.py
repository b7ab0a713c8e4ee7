"""Read models: availability, records, health, digest, rendering of slots."""
