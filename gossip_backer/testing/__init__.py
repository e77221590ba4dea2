"""Fakes that are product code (like trio.testing): a deterministic simulator of the mesh.

- `loop`: the virtual clock, a heap of (time, seq, event).
- `simnet`: a seeded network (latency, jitter, bandwidth, loss, duplication, reordering,
  partitions) carrying connections between hosts.
- `memdisk` (+ `memscan`): an in-memory root with the API of `disk/` (one conformance suite,
  tests/disk/conformance.py, holds both).
- `node` (+ `puller`): one node running the real sans-IO replica, scheduler and mirror decisions.
- `cluster`: N nodes, a topology, a dialer, users' actions and the convergence watch, all from
  one `random.Random(seed)`, so a seed replays its trace exactly.
- `oracle`: what users did, to judge "no write lost".

Nothing in the product imports this package; it uses no trio. Scenarios and invariants on top of
it live in `simulations/` (`python -m simulations`).
"""
