"""Throughput benchmarks for ltvcac, run by ``make bench`` (``python -m bench``).

One run publishes a purchase workload to an embedded broker and reads it back three
ways: a raw aiokafka consumer, a bare Faust agent and the full ltvcac worker, so the
cost of Faust and of the pipeline can be read off side by side. Never run by the tests.
"""
