"""Model and GPU catalogs, kept as data files with their sources."""
