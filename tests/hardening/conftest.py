"""Fixtures for the hardening tests (helpers live in support.py)."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
def run():
    """Run a coroutine to completion on a fresh event loop, with an overall time limit."""
    def runner(coro, timeout: float = 120.0):
        return asyncio.run(asyncio.wait_for(coro, timeout))
    return runner
