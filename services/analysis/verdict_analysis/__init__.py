"""Verdict analysis service."""
