"""insightlib: do children come back after their case is closed, how soon, for whom,
and did an intervention change that?

Layers (docs/architecture.md): ingest/ reads and checks the data, stats/ holds the one
implementation of each estimator, analyses/ puts them together per question, report/ turns
results into words, tables and charts, batch/ runs notebooks per council and builds the site,
simulate/ makes data with a known answer. Pure functions on DataFrames, small result objects
with ``to_dict()`` for results.json.
"""


def _version() -> str:
    """The version setuptools-scm derived from git tags when the package was installed (it writes
    insightlib/_version.py); the installed metadata otherwise; "0.0.0+unknown" for a bare source tree."""
    try:
        from insightlib._version import version

        return version
    except ImportError:
        from importlib import metadata

        try:
            return metadata.version("insightlib")
        except metadata.PackageNotFoundError:
            return "0.0.0+unknown"


__version__ = _version()
