"""The APro release and this suite side by side (``apro original-env``, ``apro crosscheck``).

* :mod:`~apro.crosscheck.original_env` builds the release's own stack in a venv of its own;
* :mod:`~apro.crosscheck.batch` makes the one batch both stacks see (two real photos, one synthetic);
* :mod:`~apro.crosscheck.release_side` runs in that venv (the release's code only);
* :mod:`~apro.crosscheck.suite_side` computes the same with this suite's paper configs;
* :mod:`~apro.crosscheck.compare` compares the two, term by term, against :data:`compare.TOLERANCES`;
* :mod:`~apro.crosscheck.run` runs one entry end to end; :mod:`~apro.crosscheck.report` writes the summary.

docs/crosscheck.md says what it shows and how to run it.
"""
