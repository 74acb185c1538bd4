"""Only here so the tests can `from service import serve`; the cluster gets serve.py alone."""
