"""Flow-run names that say which run they are: the run id (``p113-s999-d598-1a2b3c4d``).

Prefect calls these when a flow run starts (``flow_run_name=``); they read the run's
parameters and never fail: a config that does not validate keeps a plain name, and the flow
itself then reports the error.
"""

from __future__ import annotations

from prefect.runtime import flow_run

from tasks.config import ConfigError, RunConfig
from tasks.knobs import DEFAULT_PRESET, KNOBS, build_config


def pipeline_run_name() -> str:
    params = flow_run.parameters
    preset = params.get("preset", DEFAULT_PRESET)
    try:
        return build_config(preset, **{k.name: params.get(k.name) for k in KNOBS}).run_id
    except (ConfigError, TypeError, ValueError):
        return f"pipeline-{preset}"


def train_run_name() -> str:
    try:
        return f"train-{RunConfig.from_dict(flow_run.parameters['config']).run_id}"
    except (ConfigError, KeyError, TypeError, ValueError):
        return "train"
