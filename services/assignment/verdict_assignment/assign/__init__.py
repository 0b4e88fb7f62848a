"""AssignmentService: the in-memory configuration snapshot, its watcher, sticky assignments,
the exposure sink and the servicer. Only `watcher`, `store`, `sticky` and `exposures` do I/O."""
