"""quadlab package."""
