"""Video links: Jitsi, Zoom, and the calendar systems' own (Teams, Meet)."""
