"""Shared plumbing of Verdict's services: settings, server bootstrap, auth, errors, storage."""
