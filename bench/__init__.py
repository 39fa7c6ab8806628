"""Benchmark harness: leveret against oslo.messaging, aio-pika, nameko and raw pika.

Run it with ``make bench`` (scripts/run-bench), which creates the separate
virtualenv ``.venv-bench`` with the peers, starts a broker and writes
bench/results/latest.json, docs/benchmarks.md and docs/img/*.png.
"""
