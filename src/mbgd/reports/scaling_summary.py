"""scaling.json's content: the measured scaling curves (critical batch size, fewest updates and samples, noise
scale, lr exponent) and every batch size's row, from a ScalingResult.

JSON has no nan or inf: a value not measured (never reached, too few points) is None.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from mbgd.core import nqm, objectives
from mbgd.core.scaling_config import REGIMES
from mbgd.studies.scaling import ORDER_KEYS, ScalingCurve, ScalingPoint, ScalingResult
from mbgd.studies.sweep_summary import fitted_exponent


def _number(value: float) -> float | None:
    """JSON has no nan or inf: None stands for 'not measured' (e.g. never reached)."""
    return value if math.isfinite(value) else None


def curve_noise_scale(curve: ScalingCurve) -> float:
    """The median over the grid of B_simple where each batch size's runs reached the target; nan if none."""
    values = [p.noise_scale_at_target for p in curve.points if math.isfinite(p.noise_scale_at_target)]
    return statistics.median(values) if values else math.nan


def noise_scale_at_target(curves: Sequence[ScalingCurve]) -> dict[str, float]:
    """The noisy regime's noise scale at the target, per batch order."""
    by_order = {}
    for curve in curves:
        if curve.targets == "noisy" and math.isfinite(curve_noise_scale(curve)):
            by_order[curve.order_key] = curve_noise_scale(curve)
    return by_order


def lr_exponent(curve: ScalingCurve) -> dict:
    """The log-log slope of the tuned lr against the batch size over the grid, with its standard error (None
    where fewer than three batch sizes have a tuned lr)."""
    tuned = [(p.batch_size, p.best_lr) for p in curve.points if p.best_value < p.worst_value]
    slope, error = fitted_exponent([b for b, _ in tuned], [lr for _, lr in tuned])
    return {"best_lr_exponent": _number(slope), "best_lr_exponent_se": _number(error)}


def scan_summary(point: ScalingPoint) -> dict:
    """The scan's best and what tuning left on the table; None where there was no scan or no lr reached."""
    scan = point.lr_scan
    if scan is None:
        return {"scan_best_lr": None, "scan_best_updates": None, "tuned_regret": None, "scan_at_edge": None}
    return {
        "scan_best_lr": scan.best_lr if scan.reached else None,
        "scan_best_updates": scan.best_value if scan.reached else None,
        "tuned_regret": _number(point.tuned_regret) if scan.reached else None,
        "scan_at_edge": scan.at_edge or None,
    }


def prediction_summary(point: ScalingPoint, measured_updates: float | None) -> dict:
    """The noisy quadratic model's fewest updates and its lr, and measured / predicted (None where the model
    does not apply, predicts no lr reaching the target, or no seed reached it)."""
    predicted = point.predicted
    updates = predicted.updates if predicted is not None else None
    ratio = measured_updates / updates if measured_updates is not None and updates else None
    return {
        "predicted_updates": updates,
        "predicted_lr": predicted.lr if updates is not None else None,
        "measured_over_predicted": ratio,
    }


def summarize(result: ScalingResult) -> dict:
    """scaling.json's content."""
    config, scaling = result.config, result.theory
    by_batch_size: dict[str, dict] = {}
    measured: dict[str, dict] = {}
    for curve in result.curves:
        measured.setdefault(curve.order_key, {})[curve.regime] = {
            "critical_batch_size": _number(curve.fit.critical_batch_size),
            "fewest_updates": _number(curve.fit.s_min),
            "fewest_samples": _number(curve.fit.e_min),
            "noise_scale_at_target": _number(curve_noise_scale(curve)),
            **lr_exponent(curve),
        }
        for point in curve.points:
            # A study in which no lr reached the target has no best lr: every trial scored the worst value.
            tuned = point.best_value < point.worst_value
            row = {
                "best_lr": point.best_lr if tuned else None,
                "best_value": point.best_value,
                "eta_star": point.eta_star,
            }
            for name, key in (
                ("updates", "updates_to_target"),
                ("first_touch", "first_touch_updates"),
                ("samples", "samples_to_target"),
                ("epochs", "epochs_to_target"),
            ):
                mean, sd = point.stat(name)
                row[key], row[f"{key}_sd"] = _number(mean), _number(sd)
            row.update(scan_summary(point))
            row.update(prediction_summary(point, row["updates_to_target"]))
            row["seeds_reached"] = point.reached
            row["target_loss"] = statistics.fmean(run.target for run in point.runs)
            row["noise_scale_at_target"] = _number(point.noise_scale_at_target)
            by_batch_size.setdefault(str(point.batch_size), {}).setdefault(curve.order_key, {})[
                curve.regime
            ] = row
    by_order = noise_scale_at_target(result.curves)
    return {
        "name": config.sweep.name,
        "data": result.data.name,
        "batch_sizes": list(config.sweep.batch_sizes),
        "orders": [ORDER_KEYS[o] for o in config.orders],
        "regimes": [REGIMES[t] for t in config.targets],
        "target_ratio": config.sweep.target_ratio,
        "noisy_target_tolerance": objectives.FLOOR_TOLERANCE,
        "epochs": config.sweep.train.epochs,
        "dtype": config.sweep.train.dtype,
        "optimizer": config.sweep.train.optimizer,
        "momentum": config.sweep.train.momentum if config.sweep.train.optimizer == "momentum" else None,
        "schedule": config.sweep.train.schedule,
        "ema": config.sweep.train.ema,
        # where it is exact: SGD and heavy ball, batches drawn with replacement, without averaging
        "prediction": "noisy quadratic model" if nqm.predicts(config.sweep.train) else None,
        "n_trials": config.sweep.n_trials,
        "scan": config.sweep.scan,
        "lr_range": [config.sweep.lr_min, config.sweep.lr_max],
        # the noisy regime's: its low end below the interpolation theory's (resolve_lr_range)
        "lr_range_noisy": [config.noisy_lr_min or config.sweep.lr_min, config.sweep.lr_max],
        "seeds": [config.sweep.train.seed + i for i in range(config.sweep.seeds)],
        "critical_batch_size_theory": scaling.critical_batch_size,
        "beta": scaling.beta,
        "lambda_1": scaling.lambda_1,
        # The noisy regime's B_simple at the target: the fixed order's when it ran, else the shuffled one's.
        "noise_scale_at_target": _number(next(iter(by_order.values()), math.nan)),
        "noise_scale_at_target_by_order": by_order,
        "measured": measured,
        "by_batch_size": by_batch_size,
    }
