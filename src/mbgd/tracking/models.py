"""What a run learned from and what it made: the dataset as the run's input, the fitted line as its pyfunc
model, and registered model versions.

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric
from mlflow.exceptions import MlflowException

if TYPE_CHECKING:
    from mbgd.core.data import RegressionData
    from mbgd.core.history import DataRecord


def log_dataset(mlflow_client: MlflowClient, run_id: str, data: RegressionData | DataRecord) -> None:
    """Record the training data as the run's input (MLflow's Datasets panel)."""
    import mlflow.data
    import numpy

    features = numpy.asarray(data.x)  # a tensor's values without a copy, or a DataRecord's arrays
    targets = numpy.asarray(data.y_train)
    if data.source.startswith("synthetic"):
        dataset = mlflow.data.from_numpy(features, targets=targets, name=data.name)
    else:
        dataset = _csv_dataset(data, features, targets)
    fields = dataset.to_dict()
    entity = Dataset(
        name=fields["name"],
        digest=fields["digest"],
        source_type=fields["source_type"],
        source=fields["source"],
        schema=fields.get("schema"),
        profile=fields.get("profile"),
    )
    mlflow_client.log_inputs(
        run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])]
    )


def _csv_dataset(data: RegressionData, features, targets):
    """A CSV as MLflow's pandas dataset, whose schema names the columns.

    The source is made from the file's path, not resolved from it: a local path matches two of MLflow's source
    types, and resolving it warns "can be interpreted in multiple ways". The digest is the numpy one: MLflow's
    pandas digest applies Python to every cell (a second per million rows).
    """
    import json

    import pandas as pd
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.digest_utils import compute_numpy_digest
    from mlflow.data.pandas_dataset import from_pandas

    frame = pd.DataFrame(features, columns=list(data.feature_names))
    frame[data.target_name] = targets
    source = get_dataset_source_from_json(json.dumps({"uri": data.source}), source_type="local")
    digest = compute_numpy_digest(features, targets)
    return from_pandas(frame, source=source, targets=data.target_name, name=data.name, digest=digest)


MODEL_PACKAGES = ("mlflow", "numpy", "pandas")  # what line_model.py needs to load and predict


def log_model(
    mlflow_client: MlflowClient,
    run_id: str,
    w: Sequence[float],
    b: float,
    feature_names: Sequence[str],
    *,
    target_name: str = "y",
    example: Sequence[Sequence[float]] = (),
    name: str = "model",
    params: Mapping[str, object] | None = None,
    metrics: Sequence[Metric] = (),
) -> str:
    """Log the fitted line y = x · w + b as an MLflow 3 LoggedModel made by the run; returns its URI,
    models:/<model_id> (`runs:/<run_id>/<name>` resolves to it too).

    The model (mbgd/tracking/line_model.py, "from code") takes a DataFrame with the feature names as columns.
    It has an explicit signature, an input example (`example`'s rows, else 0 and 1 for every feature) and
    pinned pip requirements, so MLflow infers nothing. The LoggedModel carries `params` (the run's) and
    `metrics` (points the run logged, linked to the model), and is the run's output; it is made with the
    client's calls that `mlflow.pyfunc.log_model` makes, not with that function, which needs the fluent
    API's active run and logs the model's config as run params.
    """
    import logging
    import tempfile
    from importlib.metadata import version
    from pathlib import Path

    import mlflow.pyfunc
    import pandas as pd
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    names = list(feature_names)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in names]),
        outputs=Schema([ColSpec("double", target_name)]),
    )
    rows = [list(map(float, row)) for row in example] or [[0.0] * len(names), [1.0] * len(names)]
    config = {"feature_names": names, "w": [float(v) for v in w], "b": float(b)}
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    model = mlflow_client.create_logged_model(
        experiment_id,
        name=name,
        source_run_id=run_id,
        params={key: str(value) for key, value in (params or {}).items()},
        model_type="linear-regression",
    )
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    # not "Validating input example against model signature" every run
    pyfunc_logger.setLevel(logging.WARNING)
    try:
        mlflow_client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        if metrics:
            mlflow_client.log_batch(run_id, metrics=[_for_model(m, model.model_id) for m in metrics])
        with tempfile.TemporaryDirectory(prefix="mbgd-model-") as folder:
            path = Path(folder) / name
            mlflow.pyfunc.save_model(
                path,
                python_model=str(Path(__file__).with_name("line_model.py")),
                model_config=config,
                signature=signature,
                input_example=pd.DataFrame(rows, columns=names),
                pip_requirements=[f"{package}=={version(package)}" for package in MODEL_PACKAGES],
                mlflow_model=Model(
                    artifact_path=model.artifact_location,
                    model_uuid=model.model_id,
                    run_id=run_id,
                    model_id=model.model_id,
                ),
            )
            mlflow_client.log_model_artifacts(model.model_id, str(path))
    except BaseException:
        with suppress(
            Exception
        ):  # the store that failed may refuse this too: the first error is the one to see
            mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    finally:
        pyfunc_logger.setLevel(level)
    mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return f"models:/{model.model_id}"


def _for_model(metric: Metric, model_id: str) -> Metric:
    """The run's metric point, linked to the model as well (MLflow keeps one point in the run's history)."""
    return Metric(metric.key, metric.value, metric.timestamp, metric.step, model_id=model_id)


def check_model_name(name: str) -> None:
    """Raise ConfigError unless `name` is a registered model name MLflow accepts, before any run: the model
    registry's own rule (not blank, no '/' or ':', no path that normalises to another name), in its words."""
    from mlflow.utils.validation import bad_path_message, invalid_value, path_not_unique

    from mbgd.core.config import ConfigError

    if not name.strip():
        raise ConfigError(f"register_model {name!r} is blank: give a model name, or '' for none")
    if "/" in name or ":" in name:
        raise ConfigError(f"register_model: Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    if path_not_unique(name):
        raise ConfigError(f"register_model: {invalid_value('name', name, bad_path_message(name))}")


def register_model(
    mlflow_client: MlflowClient,
    model_uri: str,
    name: str,
    *,
    tags: Mapping[str, str] | None = None,
    aliases: Sequence[str] = (),
):
    """A version of the registered model `name` (created if missing, by whichever process gets there first)
    from a models:/<model_id> LoggedModel, with `aliases` moved to it; returns the ModelVersion.

    A version whose tags are exactly `tags` already (the same model, registered again: a sweep's rerun) is
    reused rather than another made beside it."""
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = dict(tags or {})
    same = [v for v in mlflow_client.search_model_versions(f"name = '{name}'") if tags and v.tags == tags]
    if same:
        version = min(same, key=lambda v: int(v.version))
    else:
        model = mlflow_client.get_logged_model(model_uri.removeprefix("models:/"))
        version = mlflow_client.create_model_version(
            name, model_uri, run_id=model.source_run_id, tags=tags, model_id=model.model_id
        )
    for alias in aliases:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    close_registry_at_exit(mlflow_client)
    return version


def describe_registered_model(mlflow_client: MlflowClient, name: str, description: str) -> None:
    mlflow_client.update_registered_model(name, description=description)


def close_registry_at_exit(mlflow_client: MlflowClient) -> None:
    """The registry store's connections closed when the process ends, as the tracking store's are: otherwise
    a sqlite store keeps everything since its last checkpoint in its write-ahead log (a copy of mlflow.db
    alone would lose the sweep)."""
    from mbgd.runtime.processes import collect_at_exit, dispose_at_exit
    from mbgd.tracking import mlflow_internals

    engines = mlflow_internals.registry_engines(mlflow_client)
    if engines is None:
        collect_at_exit()
    for engine in engines or ():
        dispose_at_exit(engine)
