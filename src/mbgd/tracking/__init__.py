"""MLflow: the store and its check, runs and their lifecycle, params, metrics, models, the registry, UI links
and views.

May import: mbgd.core, mbgd.runtime, MLflow. MLflow's private names only in mbgd.tracking.mlflow_internals.
"""
