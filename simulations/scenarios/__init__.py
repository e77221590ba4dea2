"""One small file per scenario; `simulations.run(NAME)` plays one (see simulations/__init__.py)."""
