"""Flow-run names that say which run they are: the run id (``p113-s999-d598-1a2b3c4d``).

Prefect calls these when a flow run starts (``flow_run_name=``); they read the run's
parameters and never fail: a config that does not validate keeps a plain name, and the flow
itself then reports the error.
"""

from __future__ import annotations

import inspect

from prefect.runtime import flow_run

from tasks.config import ConfigError, RunConfig


def pipeline_run_name() -> str:
    from flows.pipeline import build_config, pipeline

    args = {**_defaults(pipeline.fn), **flow_run.parameters}
    try:
        return build_config(**{k: args[k] for k in _defaults(build_config)}).run_id
    except (ConfigError, KeyError, TypeError, ValueError):
        return f"pipeline-{args.get('preset')}"


def _defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()}


def train_run_name() -> str:
    try:
        return f"train-{RunConfig.from_dict(flow_run.parameters['config']).run_id}"
    except (ConfigError, KeyError, TypeError, ValueError):
        return "train"
