"""The command line: click options from one table, a frozen config per command, errors as one-line messages.

May import: every package. torch, MLflow, Optuna and matplotlib only inside the commands, so that `mbgd
--help` stays instant.
"""
