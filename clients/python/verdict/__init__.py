"""Verdict Python client."""
