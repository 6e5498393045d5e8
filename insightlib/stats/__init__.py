"""Estimating: pure numpy/scipy/pandas functions, no words and no files."""
