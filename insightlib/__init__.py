"""insightlib: do children come back after their case is closed, how soon, for whom,
and did an intervention change that?

One module per concern (see docs/architecture.md). Pure functions on DataFrames,
small result objects with ``to_dict()`` for results.json.
"""

__version__ = "0.1.0"
