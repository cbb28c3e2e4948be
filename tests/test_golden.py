"""Parity with the official code: every fixture of every manifest under $ACESTEP_GOLDEN_DIR."""

import pytest

from golden_harness import Fixture, discover
from golden_runners import RUNNERS

CASES = discover()


def test_golden_fixtures_found():
    assert CASES, "no golden manifest found: set ACESTEP_GOLDEN_DIR or place ../shared/golden"


@pytest.mark.parametrize("folder,stem", CASES, ids=[stem for _, stem in CASES])
def test_golden(folder, stem):
    fixture = Fixture(folder, stem)
    runner = RUNNERS.get(fixture.component)
    if runner is None:
        pytest.skip(f"component {fixture.component} is not implemented yet")
    runner(fixture)
    assert fixture.checks, f"{stem}: the runner compared nothing"
