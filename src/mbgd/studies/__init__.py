"""Optuna: storages and studies, the multi-worker protocol and its lock, pruning, the study loop, and what the
studies measure (seeds of each best lr, the scaling of updates with the batch size).

May import: mbgd.core, mbgd.runtime, Optuna. Optuna's private names only in mbgd.studies.optuna_internals.
"""
