"""One module per CLI command: argument parsing and a thin call into the agent."""
