"""tunebird's benchmark suite: tuned vs untuned vs every peer, as tables, JSON and plots.

Run ``python -m bench --help``.  This package imports nothing heavy at import
time: the Hummingbird worker imports ``bench.measure`` from another virtual
environment.
"""
