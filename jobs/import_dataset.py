"""Turn a public recommendation dataset into landing files of the warehouse (the DESIGN.md command).

    python -m jobs.import_dataset --format movielens-100k --source DIR --warehouse DIR [--media DIR]

The command users type stays here; the importers live in jobs/datasets/import_dataset.py
(formats, files read and what is written: see its docstring, or --help).
"""

from __future__ import annotations

import sys

from jobs.datasets.import_dataset import main

if __name__ == "__main__":
    sys.exit(main())
