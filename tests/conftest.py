"""Fixtures shared by several test folders. The browser is defined once here: a session fixture
imported into two modules would be two fixtures, and the second Playwright would refuse to start
inside the first one's event loop."""

from tests.browser import browser, shots  # noqa: F401 (fixtures)
