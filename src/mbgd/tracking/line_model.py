"""A fitted line, y = x · w + b, as an MLflow pyfunc model "from code" (mbgd.tracking.models.log_model saves
it).

MLflow copies this file into the model's folder and runs it when the model is loaded; the weights, the bias
and the feature names come from the model's config. So a logged model needs only MLflow, numpy and pandas to
load, not mbgd. mbgd itself never imports this module.
"""

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model


class LineModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        config = context.model_config
        self.feature_names = list(config["feature_names"])
        self.w = np.asarray(config["w"], dtype=np.float64)
        self.b = float(config["b"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        """w · x + b for each row; the columns are taken by feature name, in the model's order."""
        return model_input[self.feature_names].to_numpy(dtype=np.float64) @ self.w + self.b


set_model(LineModel())
