"""A run's files: figures, PNG bytes, text, dictionaries and folders, logged as its artifacts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlflow import MlflowClient

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def log_figure(mlflow_client: MlflowClient, run_id: str, figure: Figure, artifact_file: str) -> None:
    mlflow_client.log_figure(run_id, figure, artifact_file)


def log_png(mlflow_client: MlflowClient, run_id: str, png: bytes, artifact_file: str) -> None:
    """A figure rendered elsewhere (plots.png_bytes), logged where log_figure would have put it."""
    import tempfile

    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mbgd-figure-") as local:
        path = os.path.join(local, name)
        with open(path, "wb") as file:
            file.write(png)
        mlflow_client.log_artifact(run_id, path, folder or None)


def log_text(mlflow_client: MlflowClient, run_id: str, text: str, artifact_file: str) -> None:
    mlflow_client.log_text(run_id, text, artifact_file)


def log_dict(mlflow_client: MlflowClient, run_id: str, dictionary: dict, artifact_file: str) -> None:
    mlflow_client.log_dict(run_id, dictionary, artifact_file)


def log_artifacts(mlflow_client: MlflowClient, run_id: str, folder: str, artifact_path: str) -> None:
    """Every file of `folder` as the run's artifacts under `artifact_path`."""
    mlflow_client.log_artifacts(run_id, folder, artifact_path)
