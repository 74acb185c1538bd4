"""Configuring services through their own APIs, once they are up: what a chart cannot declare.

Standard library only (plus `infra.polling`): these modules are mounted into a stock Python
image and run in-cluster by a Job the Pulumi program awaits, and they run in-process in the tests
against stand-ins for the same APIs.
"""
