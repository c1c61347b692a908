"""Benchmarks of the template and of the service it renders (not run by the tests)."""
