"""Writing words, tables and charts from result objects."""
