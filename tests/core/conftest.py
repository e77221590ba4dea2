"""Fixtures for the core tests.

Helpers live in `replicas.py` (importable as `replicas`: pytest puts this folder on sys.path).
Hypothesis settings are set per test (see `replicas.quick` and friends), never as a global
profile, so loading this conftest changes nothing for the other test folders."""

from __future__ import annotations

import pytest

from replicas import Mesh, make_replicas


@pytest.fixture
def mesh() -> Mesh:
    """A mesh founded by test identity 0, with real signatures."""
    return Mesh()


@pytest.fixture
def trio_of_replicas(mesh):
    """Three joined replicas R0 (founder), R1, R2."""
    return make_replicas(mesh, 3)
