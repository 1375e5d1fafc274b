"""Read models: per-domain views of the store (hierarchy, slices, scores) for the panes."""
