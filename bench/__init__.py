"""Benchmarks for ltvcac, run by ``make bench`` (``python -m bench``).

One run publishes a shop's event mix to an embedded broker and reads it back three
ways: a raw aiokafka consumer, a bare Faust agent and the full ltvcac worker, so the
cost of Faust and of the pipeline can be read off side by side; then with one and two
workers of one app id (scaling). Never run by the tests.
"""
