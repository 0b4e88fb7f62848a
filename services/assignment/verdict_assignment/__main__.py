"""Runs the assignment service: `python -m verdict_assignment` (port VERDICT_ASSIGNMENT_PORT)."""

from verdict_assignment.service import DEFINITION
from verdict_platform.server import run_service

if __name__ == "__main__":
    run_service(DEFINITION)
