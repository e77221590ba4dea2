"""Helpers of benchmarks/compare.py: one module per tool run side by side (backer.py, syncthing.py,
rsyncd.py), the seeded datasets (datasets.py), and what they share (common.py: free ports, waiting
with a deadline, peak RSS from /proc, process cleanup, tree comparison)."""
