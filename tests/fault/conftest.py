"""The fault campaign drives real `backer` processes with the end-to-end helpers."""

from tests.e2e.conftest import daemons  # noqa: F401 - the fixture, for the tests here
