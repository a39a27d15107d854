"""The tracked commands: compute through core and studies, then hand the results to tracking and reports; a
trial's child run, the helper that writes them, local worker processes.

May import: every package below it (core, runtime, studies, tracking, reports); never mbgd.cli.
"""
