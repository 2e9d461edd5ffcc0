"""The `billstream` command: parses arguments, builds settings once, calls a component."""
