"""The project archive that Spark ships to executors (`--py-files`): jobs/, features/, models/
and sql/ in one zip named after the version, so executors never import from a checkout.

Directory entries are written too: zipimport finds a package only by its directory entry.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

VERSION = "0.15.0"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PACKAGES = ("jobs", "features", "models", "sql")
SHIPPED_SUFFIXES = (".py", ".sql", ".txt")   # .txt: the text encoder's calibration texts


def archive_name(version: str = VERSION) -> str:
    return f"video_recs-{version}.zip"


def build_archive(out_dir: Path) -> Path:
    """Write `out_dir/video_recs-<version>.zip` (replacing one that is there) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / archive_name()
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in SHIPPED_PACKAGES:
            root = PROJECT_ROOT / package
            for path in sorted([root, *root.rglob("*")]):
                if "__pycache__" in path.parts or not (path.is_dir() or path.suffix in SHIPPED_SUFFIXES):
                    continue
                archive.write(path, path.relative_to(PROJECT_ROOT))
    partial.replace(target)   # a reader never sees half an archive
    return target
