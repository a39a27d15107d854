"""Figures and text: matplotlib Figures and markdown made from results, never shown, saved or logged here.

May import: mbgd.core, mbgd.studies (the results they describe), matplotlib, and Optuna's own figures of a
study (optuna.visualization.matplotlib).
"""
