"""The SparkSession's settings: local defaults in local mode only (a cluster keeps its own; the
standalone-cluster test in test_end_to_end.py checks that side)."""

from __future__ import annotations

import os

import pytest

from jobs.plumbing.spark import effective_settings

pytestmark = pytest.mark.spark


def test_local_mode_has_local_defaults_and_says_so(spark):
    assert spark.conf.get("spark.ui.enabled") == "false"
    assert spark.conf.get("spark.sql.shuffle.partitions") == os.environ["VREC_SHUFFLE_PARTITIONS"]
    line = effective_settings(spark)
    assert line.startswith("master=local[2] ") and f"shuffle.partitions={os.environ['VREC_SHUFFLE_PARTITIONS']} " in line
    assert "ui=off" in line
