"""The two kinds of failure every ``apro`` command tells apart, by exit code.

* :class:`InputError` (exit 2): a bad argument or input file. The message names the argument or
  the file and what was expected; nothing has been written.
* :class:`RunFailed` (exit 1): the inputs were fine but the run did not complete (a download that
  failed, a rank that waited in vain, a training that left no checkpoint).

Each module subclasses one of them (``TrainError(InputError)``, ``FetchError(RunFailed)``, ...), so
:func:`apro.cli.main` maps any of them to its exit code in one place.
"""


class InputError(ValueError):
    """A bad argument or input file (exit code 2)."""


class RunFailed(RuntimeError):
    """A run that did not complete although its inputs were valid (exit code 1)."""
