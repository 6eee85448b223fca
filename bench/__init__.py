"""ragship's benchmarks: `make bench` (or `python -m bench [name ...]`) runs them.

Each benchmark builds what it needs on loopback (a temporary PostgreSQL from `pgserver`,
the built-in local model, the app on a background server), measures a baseline in the same
run, prints a table and cleans up after itself. Loops are bounded in count and in time.
"""
