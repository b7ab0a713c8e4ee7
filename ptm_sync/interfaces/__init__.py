"""How people and machines reach ptm-sync: the command line, the web, the daemon."""
