"""mbgd: the PyTorch mini-batch gradient descent tutorial, tracked in MLflow and tuned with Optuna."""

__version__ = "0.1.0"
