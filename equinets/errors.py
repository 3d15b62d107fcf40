"""The user-error hierarchy: what the ``equinets`` command line reports as one line with exit code 2.

Policy (``equinets.train.cli``):

* An exception derived from :class:`UserError` is a mistake in what the user asked for (a config key, a
  command-line argument, a checkpoint or run directory, a dataset argument). The CLI prints it as one
  line ``equinets <cmd>: error: <message>`` on stderr and exits with 2.
* Everything else is an internal error and keeps its traceback, whatever its type: a bare
  ``ValueError`` raised deep inside torch while training is a bug to report, not a user error.
* The one bridge: while a run is being *set up* (before the first training step: config, checkpoint,
  dataset construction and model construction), the ``ValueError``/``TypeError``/``FileNotFoundError``
  raised by equinets' own dataset and model constructors are argument checks on user input, so the
  trainer re-raises them as :class:`SetupError` (keeping the original as ``__cause__``). Set
  ``EQUINETS_TRACEBACK=1`` to see the full traceback of any user error.

Each class also derives from the built-in exception callers caught before this hierarchy existed
(``ConfigError`` is a ``ValueError``, ``CheckpointError`` a ``RuntimeError``, ``RunExistsError`` a
``FileExistsError``), so existing ``except`` clauses keep working.

>>> from equinets.train.config import ConfigError
>>> issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["UserError", "SetupError"]


class UserError(Exception):
    """Base class of every error caused by the user's input rather than by a bug in equinets."""


class SetupError(UserError, ValueError):
    """A dataset or model rejected its arguments while a run was being set up (before training started)."""
