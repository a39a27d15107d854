"""Processes and their ends: errors raised across layers, stop signals, liveness, the compute worker, sqlite
settings.

May import: the standard library (SQLAlchemy inside functions); nothing else of mbgd. It knows nothing of
training, studies or runs.
"""
