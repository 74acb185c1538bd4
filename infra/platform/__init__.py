"""The platform model: stack config in, desired platform out, as plain data (no Pulumi, no I/O)."""
