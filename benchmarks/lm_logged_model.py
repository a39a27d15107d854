"""LM: one fitted line logged as an MLflow 3 LoggedModel by mbgd (`mbgd.tracking.models.log_model`) against
MLflow's own one call, `mlflow.pyfunc.log_model` in an active run, fastest of 7 interleaved, each on a run of
its own in one sqlite store.

The ratio's goal: mbgd's way, which makes the same entities through the client (model, output link, linked
metrics, artifacts, READY), costs no more than MLflow's. A note gives the milliseconds of both and of the way
before LoggedModels (the folder saved and logged as run artifacts: no entity), so the entity's price is plain.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from harness import Context, Result, interleaved_fastest, use_tracking_store

GOAL = 1.0
REPEATS = 7


def run(context: Context) -> list[Result]:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from mbgd.tracking import models

    use_tracking_store(context.store("lm"))
    client = MlflowClient()
    experiment_id = client.create_experiment("lm")
    line_model = str(Path(models.__file__).with_name("line_model.py"))
    config = {"feature_names": ["x"], "w": [-5.0], "b": 0.1}
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "x")]), outputs=Schema([ColSpec("double", "y")])
    )
    example = pd.DataFrame({"x": [0.0, 1.0]})
    metrics = [Metric("final_loss", 0.155, 0, 0), Metric("w", -5.0, 0, 0), Metric("b", 0.1, 0, 0)]
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    def new_run() -> str:
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(run_id, metrics=metrics)
        return run_id

    def mbgd_logged_model() -> None:
        models.log_model(client, new_run(), [-5.0], 0.1, ["x"], params={"lr": "0.1"}, metrics=metrics)

    def mlflow_log_model() -> None:
        with mlflow.start_run(run_id=new_run()):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=line_model,
                model_config=config,
                signature=signature,
                input_example=example,
                pip_requirements=["mlflow", "numpy", "pandas"],
                params={"lr": "0.1"},
            )

    def artifacts_only() -> None:
        run_id = new_run()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model"
            mlflow.pyfunc.save_model(
                path,
                python_model=line_model,
                model_config=config,
                signature=signature,
                input_example=example,
                pip_requirements=["mlflow", "numpy", "pandas"],
            )
            client.log_artifacts(run_id, str(path), "model")

    sides = {"mbgd": mbgd_logged_model, "mlflow": mlflow_log_model, "artifacts": artifacts_only}
    for side in sides.values():
        side()  # warm: imports and the store's first writes
    seconds = interleaved_fastest(sides, 2 if context.quick else REPEATS)
    context.note(
        "ms per model: mbgd LoggedModel {mbgd:.0f}, mlflow.pyfunc.log_model {mlflow:.0f}, "
        "run artifacts without an entity {artifacts:.0f}".format(**{k: v * 1000 for k, v in seconds.items()})
    )
    return [
        Result(
            "LM",
            "LoggedModel: mbgd vs mlflow.pyfunc.log_model",
            seconds["mbgd"] / seconds["mlflow"],
            goal=GOAL,
        )
    ]
