"""The outside world, one folder a kind: store, mail, video, files, systemd."""
