"""The command line (DESIGN §7 Contract), its output and exit codes."""
