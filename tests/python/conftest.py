"""Fixtures for the PyTorch client suite: the same harness as tests/integration."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'integration'))
import tpdefs_harness as H  # noqa: E402


@pytest.fixture
def mounts():
    yield from H.make_factory_fixture()


@pytest.fixture
def fsm(mounts):
    return mounts.new('fs')


def pytest_terminal_summary(terminalreporter):
    H.terminal_summary(terminalreporter)
