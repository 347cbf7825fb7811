"""Errors a user can cause: they end in one clear message and a non-zero exit, never a trace."""


class UserError(Exception):
    """A mistake in the user's input (files, options, definitions, environment).

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``.
    """

    exit_code = 1


class MissingInputError(UserError):
    """A required raw file, table or column is absent."""


class EnvironmentProblem(UserError):
    """The machine lacks something the project needs (Java, a writable lake root)."""
