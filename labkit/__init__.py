"""Plumbing shared by quadlab, nets and figures, with no heavy dependencies: atomic file writes,
the results cache, the progress display and the table formatter."""
