"""`mlflow run` with every entry point, its parameters spelled as a user may type them.

`mlflow run` logs each entry point parameter on the run it makes exactly as typed, shell-quoted (`1e-3`,
`''`), before mbgd starts; mbgd must finish that run without logging a second value for any key.
"""

import os
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from checks import run_ok

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TWO_FEATURES = PROJECT_ROOT / "tests" / "data" / "two_features.csv"

pytestmark = pytest.mark.slow

TINY_STUDIES = ["n_trials=02", "population=2", "batch_sizes=1,2"]
SPELLINGS = {
    "main": ["lr=1e-3", "epochs=02", "batch_size=020", "seed=042", "compare_with=", "data="],
    "main-csv": ["lr=.001", "epochs=2", "batch_size=4", "compare_with=1,", f"data={TWO_FEATURES}"],
    "sweep": [
        *TINY_STUDIES,
        "seeds=1",
        "epochs=2",
        "lr_min=1E-4",
        "lr_max=1",
        "sampler_seed=00",
        "name=odd",
        "register_model=",
    ],
    # The report compares with the tutorial's batch size 20; epochs is not a report parameter: passed on as
    # --epochs.
    "report": [
        "n_trials=02",
        "population=2",
        "batch_sizes=1,20",
        "seeds=01",
        "epochs=2",
        "output_dir={tmp}/report",
    ],
    "scaling": [
        *TINY_STUDIES,
        "seeds=1",
        "epochs=2",
        "target_ratio=1e-2",
        "order=fixed",
        "targets=clean",
        "output_dir={tmp}/scaling",
    ],
    "lr_momentum": [
        *TINY_STUDIES,
        "seeds=1",
        "epochs=2",
        "scan=08",
        "momenta=03",
        "momentum_max=.9",
        "tuning_cost_seeds=0",
        "order=fixed",
        "targets=clean",
        "output_dir={tmp}/lr_momentum",
    ],
}
# logged by mbgd beside them
MBGD_ONLY_PARAM = {
    "main": "n_samples",
    "sweep": "storage",
    "scaling": "storage",
    "lr_momentum": "storage",
}


def entry_point(case: str) -> str:
    return case.split("-")[0]


@pytest.mark.parametrize("case", sorted(SPELLINGS))
def test_mlflow_run_finishes_with_one_value_per_param_whatever_the_spelling(
    case: str, tracking_store: str, tmp_path: Path
) -> None:
    spellings = [item.format(tmp=tmp_path) for item in SPELLINGS[case]]
    given = dict(item.split("=", 1) for item in spellings)
    args = [arg for item in spellings for arg in ("-P", item)]
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": tracking_store,
    }
    run_ok(
        [
            str(BIN / "mlflow"),
            "run",
            str(PROJECT_ROOT),
            "-e",
            entry_point(case),
            "--env-manager",
            "local",
            *args,
        ],
        env=env,
        timeout=600,
    )
    client = MlflowClient(tracking_store)
    top = [
        run
        for run in client.search_runs(["0"], max_results=1000)
        if "mlflow.parentRunId" not in run.data.tags
    ]
    (run,) = [r for r in top if r.data.tags.get("mlflow.project.entryPoint") == entry_point(case)]
    assert run.info.status == "FINISHED"
    for key, value in given.items():  # as typed, as `mlflow run` quotes it for the shell
        assert run.data.params[key] == shlex.quote(value), key
    database = tracking_store.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        counts = db.execute(
            "SELECT key, COUNT(*) FROM params WHERE run_uuid = ? GROUP BY key", (run.info.run_id,)
        )
        assert {count for _, count in counts} == {1}
    db.close()
    if entry_point(case) in MBGD_ONLY_PARAM:
        assert MBGD_ONLY_PARAM[entry_point(case)] in run.data.params
    assert all(r.info.status == "FINISHED" for r in client.search_runs(["0"], max_results=1000))
