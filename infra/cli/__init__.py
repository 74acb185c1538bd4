"""The `cd4ml` command line."""
