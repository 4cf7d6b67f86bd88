"""Package: build the project archive that the Spark stages ship to executors.

    python -m jobs.package [--out DIR]

Writes `DIR/video_recs-<version>.zip` (jobs/, features/, models/, sql/) and prints its path as the
last line of stdout. `make dist` builds it into `dist/`; the DAG's `package` task builds one per
run into `<warehouse>/runs/<ds>/dist/` and passes it to every Spark stage with `py_files`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.plumbing.dist import build_archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist"), help="directory of the archive (default: dist)")
    args = parser.parse_args(argv)
    print(build_archive(args.out).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
