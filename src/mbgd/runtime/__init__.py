"""Processes and their ends: errors raised across layers, stop signals, liveness, the compute worker, sqlite
settings.

May import: the standard library (SQLAlchemy inside functions); nothing else of mbgd. It knows nothing of
training, studies or runs: the compute worker runs the calls it is handed, and names by string only the
modules it imports ahead in its own process (WARM_MODULES).
"""
