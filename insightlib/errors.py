"""Errors a user can act on. The command line prints their message and exits with their code, no traceback."""

from __future__ import annotations


class InsightError(Exception):
    """Something the user can fix; ``exit_code`` follows docs/architecture.md (2 bad input or usage)."""

    exit_code = 2


class InputError(InsightError):
    """Bad input data or configuration: the message names the file, row and rule."""


class EvaluationFileError(InputError):
    """An evaluation YAML file that does not match its schema."""
