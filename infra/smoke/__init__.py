"""Smoke tests: every service reachable, every wire carrying data. Reads the platform model; never
imports Pulumi (it runs against whatever is deployed, however it got there)."""
