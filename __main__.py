"""Pulumi entry point (`pulumi up` runs this); the program lives in infra/program.py."""

from infra.program import run

run()
