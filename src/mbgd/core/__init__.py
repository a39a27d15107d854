"""The numeric core: config, data, training populations, theory, objectives and lr scans.

May import: torch and the standard library; nothing else of mbgd. Never MLflow, Optuna or matplotlib, never a
file written or a line printed: it computes and returns.
"""
