"""Fixtures for the FUSE integration suite (real mounts of the built mount.tpdefs)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpdefs_harness as H  # noqa: E402


@pytest.fixture
def mounts():
    """Factory: mounts.new(opts=[...]) -> mounted H.Mount; all unmounted at teardown."""
    yield from H.make_factory_fixture()


@pytest.fixture
def fsm(mounts):
    """One fresh tpdefs mount (empty backing dir, default options)."""
    return mounts.new('fs')


def pytest_terminal_summary(terminalreporter):
    H.terminal_summary(terminalreporter)
