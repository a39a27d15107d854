"""PR: the study phase of the same sweep with and without `--pruner hyperband`: the time ratio, and the best
lr each finds per batch size (a pruner that saves time but finds a worse lr must show it). No goal: a finding.
"""

from __future__ import annotations

import time
from dataclasses import replace

from harness import Context, Result

BATCH_SIZES = (1, 10, 20)
N_TRIALS = 64


def study_phase(config, data) -> tuple[float, dict[int, tuple[float, int]]]:
    """Seconds for every batch size's study, and per batch size (best lr, PRUNED trials)."""
    import optuna

    from mbgd.studies import storage as studies
    from mbgd.studies import sweep

    storage = studies.open_storage(config.storage)
    found = {}
    start = time.perf_counter()
    for batch_size in config.batch_sizes:
        study = sweep.run_study(config, data, batch_size, storage)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.get_trials(deepcopy=False))
        found[batch_size] = (study.best_params["lr"], pruned)
    return time.perf_counter() - start, found


def run(context: Context) -> list[Result]:
    from mbgd.core.config import SweepConfig
    from mbgd.core.data import load_data

    n_trials = 8 if context.quick else N_TRIALS
    config = SweepConfig(batch_sizes=BATCH_SIZES, n_trials=n_trials)
    data = load_data(config.train.data, config.train.seed)
    timings = {}
    for pruner in ("none", "hyperband"):
        pruner_config = replace(
            config, pruner=pruner, name=f"pr-{pruner}", storage=context.store(f"pr-optuna-{pruner}")
        )
        seconds, found = study_phase(pruner_config, data)
        timings[pruner] = seconds
        lrs = ", ".join(f"b{b}: lr {lr:.4g} ({pruned} pruned)" for b, (lr, pruned) in found.items())
        context.note(f"{pruner:>9}: {seconds:.1f} s; {lrs}")
    ratio = timings["none"] / timings["hyperband"]
    return [Result("PR", "sweep study phase, no pruner ÷ hyperband (>1: pruning saves time)", ratio)]
