"""``python -m apro``: the ``apro`` command (what torchrun launches: ``-m apro train ...``)."""
import sys

from apro.cli import main

sys.exit(main())
