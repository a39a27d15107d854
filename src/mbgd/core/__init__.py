"""The numeric core: config, data, training populations, theory, objectives and lr scans.

May import: torch and the standard library, and Optuna's TPE sampler inside core/scan.py's tuning-cost search
(in-memory studies, never a storage); nothing else of mbgd. Never MLflow or matplotlib, never a file written
or a line printed: it computes and returns.
"""
