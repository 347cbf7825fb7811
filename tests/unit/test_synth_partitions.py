"""How the generator splits its persons into Spark tasks (the files do not depend on it:
tests/integration/test_synth.py writes the same bytes from one and from three partitions)."""

from __future__ import annotations

import pytest

from cohortlake.synth.model import MIN_PERSONS_PER_TASK, PERSONS_PER_PARTITION, source_partitions_for


@pytest.mark.parametrize(("patients", "parallelism", "partitions"), [
    (1, 4, 1),
    (300, 4, 1),  # a few hundred persons: one task (a second task's overhead outweighs its work)
    (1_499, 4, 1),
    (1_500, 4, 2),  # the tests' demo lake: both cores of the 2-core machine
    (20_000, 4, 4),  # the demo: one partition per core of default parallelism
    (100_000, 4, 4),
    (1_000_000, 4, 20),  # large runs: PERSONS_PER_PARTITION decides
    (20_000, 64, 26),  # many cores: never fewer than MIN_PERSONS_PER_TASK persons a task
    (20_000, 1, 1),
    (120_000, 1, 3),
])
def test_partitions_follow_the_cores_and_the_size(patients, parallelism, partitions):
    assert source_partitions_for(patients, parallelism) == partitions


def test_every_partition_keeps_enough_persons_and_none_too_many():
    for patients in (1, 10, 749, 750, 5_000, 49_999, 50_001, 333_333, 2_000_000):
        for parallelism in (1, 2, 4, 8, 200):
            n = source_partitions_for(patients, parallelism)
            assert n >= 1
            assert patients / n <= PERSONS_PER_PARTITION
            assert n == 1 or patients / n >= MIN_PERSONS_PER_TASK or n == -(-patients // PERSONS_PER_PARTITION)
