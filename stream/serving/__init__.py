"""Projections of state for readers: Redis hashes and HTTP views."""
