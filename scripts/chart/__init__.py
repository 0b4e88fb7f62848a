"""A deterministic renderer of the Verdict Helm chart (see `gotemplate` for the subset)."""
