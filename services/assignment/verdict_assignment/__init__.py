"""The assignment service: ExperimentService (configuration) and AssignmentService (hot path)."""
