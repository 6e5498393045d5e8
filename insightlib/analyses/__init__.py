"""Orchestrating an analysis: data in, result objects out."""
