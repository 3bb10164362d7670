"""The deployment path for real, on CPU: `tdw server` on 127.0.0.1, a process work pool,
`tdw deploy` from deploy/prefect.yaml, `prefect deployment run` with the smoke preset (runs
root and device as job variables), a worker with --run-once; the flow run must complete and
the store hold every analysed epoch; Ctrl-C (SIGINT) then stops the server cleanly. Everything
started here is stopped by process id."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from cli import deploy, server
from cli.deploy import PREFECT_FILE
from store.run_store import open_run
from tasks.analyses import STANDARD
from tasks.config import preset
from tasks.runs import pending_epochs
from tests.children import ctrl_c_reaches
from tests.wait import wait_for

POOL = "tdw-test"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_prefect_yaml_declares_pipeline_and_sweep_on_a_process_pool():
    spec = yaml.safe_load(PREFECT_FILE.read_text())
    assert spec["pull"] == [{"cli.deploy.enter_checkout": {}}]
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert by_name["pipeline"]["entrypoint"] == "flows/pipeline.py:pipeline"
    assert by_name["sweep"]["entrypoint"] == "flows/sweep.py:sweep_flow"
    for d in by_name.values():
        assert d["work_pool"]["name"] == deploy.POOL
        assert set(d["work_pool"]["job_variables"]["env"]) == {"TDW_RUNS", "TDW_DEVICE"}


@pytest.mark.parametrize("name", ["pipeline", "sweep"])
def test_each_deployment_names_a_flow_that_takes_its_parameters(name):
    """What `prefect deploy` checks when it loads an entrypoint, without a server (the
    deployment test below deploys the pipeline for real)."""
    import importlib
    import inspect

    from prefect import Flow

    spec = {d["name"]: d for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]}[name]
    path, _, attr = spec["entrypoint"].partition(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), attr)
    assert isinstance(flow, Flow) and flow.name == name
    assert set(spec["parameters"]) <= set(inspect.signature(flow.fn).parameters)


def test_deploy_without_a_server_or_with_an_unknown_name_is_bad_input(capsys, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cli.main import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # also when a test server is up
        assert main(["deploy", "pipeline"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "PREFECT_API_URL" in err[0]
        assert main(["deploy", "nosuch"]) == 2
        assert "no deployment named nosuch" in capsys.readouterr().err


def test_device_job_variable_falls_back_to_cpu_or_is_refused(monkeypatch, capsys, tmp_path):
    """TDW_DEVICE (the deployments' job variable): auto picks CUDA when present, else CPU; a
    CUDA device on a machine without one is bad input, before anything runs."""
    import torch

    from cli.main import main
    from tasks.training import pick_device

    monkeypatch.setenv("TDW_DEVICE", "auto")
    assert pick_device(os.environ["TDW_DEVICE"]).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        pytest.skip("the refusal needs a machine without CUDA")
    monkeypatch.setenv("TDW_DEVICE", "cuda")
    assert main(["run", "--preset", "smoke", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA" in err[0]
    assert not os.listdir(tmp_path)  # refused before anything was written


def test_pull_step_enters_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert deploy.enter_checkout() == {"directory": str(deploy.REPO)}
    assert os.getcwd() == str(deploy.REPO)


def _cli(args: list[str], env: dict, timeout: float = 180) -> str:
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL, cwd=deploy.REPO)
    assert out.returncode == 0, f"{args[:4]} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.slow
def test_pipeline_deployment_completes_on_a_process_worker(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = server.free_port()
    url = server.api_url(port=port)
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(tmp_path / "prefect-client"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    runs = tmp_path / "runs"
    server_log = tmp_path / "server.log"
    with open(server_log, "wb") as out:  # `tdw server`, as a user starts it; Ctrl-C (SIGINT) stops it
        srv = subprocess.Popen([sys.executable, "-m", "cli.main", "server", "--port", str(port),
                                "--home", str(tmp_path / "prefect-server")], stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=ctrl_c_reaches)
    worker = None
    try:
        t = time.monotonic()

        def announced():
            assert srv.poll() is None, server_log.read_text()[-3000:]
            return re.search(r"server pid (\d+)", server_log.read_text())

        wait_for(announced, 120, interval=0.25, what=lambda: "tdw server: " + server_log.read_text()[-3000:])
        assert server.healthy(url) and f"Prefect UI on http://127.0.0.1:{port}" in server_log.read_text()
        print(f"\nserver healthy in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        _cli([sys.executable, "-m", "cli.main", "deploy", "pipeline", "--pool", POOL], env)
        print(f"tdw deploy: {time.monotonic() - t:.1f} s")

        t0 = time.monotonic()
        out = _cli([sys.executable, "-m", "prefect", "deployment", "run", "pipeline/pipeline",
                    "-p", "preset=smoke", "--job-variable",
                    "env=" + json.dumps({"TDW_RUNS": str(runs), "TDW_DEVICE": "cpu"})], env)
        flow_run_id = UUID.search(out).group(0)
        print(f"prefect deployment run: {time.monotonic() - t0:.1f} s")
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                                       "--run-once"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            deployments = {(d.name, d.work_pool_name) for d in client.read_deployments()}
            assert deployments == {("pipeline", POOL)}

            def finished():
                run = client.read_flow_run(flow_run_id)
                return run if run.state and run.state.is_final() else None

            run = wait_for(finished, 240, interval=0.5, what=lambda: "the flow run to finish; worker: "
                           + (tmp_path / "worker.log").read_text()[-4000:])
            elapsed = time.monotonic() - t0
            worker.wait(timeout=60)
            assert run.state.is_completed(), (run.state, (tmp_path / "worker.log").read_text()[-4000:])
            print(f"\ndeployment run -> COMPLETED: {elapsed:.1f} s (smoke preset, worker --run-once)")

            cfg = preset("smoke")
            assert run.name == cfg.run_id  # readable: the run id
            names = {r.name for r in client.read_flow_runs()}  # this server saw only this run
            assert f"train-{cfg.run_id}" in names and f"analyze-{cfg.run_id}" in names
            tasks = {t.name for t in client.read_task_runs()}
            assert {f"analyze-{e}" for e in cfg.checkpoint_epochs} <= tasks
            artifacts = client.read_artifacts()
            kinds = {a.type for a in artifacts}
            assert "progress" in kinds
            summary = [a for a in artifacts if a.key == "run-summary"]
            assert summary and "key frequencies" in summary[0].data and cfg.run_id in summary[0].data

        st = open_run(str(runs), cfg.run_id, mode="r")
        keys = st.key_frequencies()
        assert keys
        for analysis in STANDARD:
            assert st.done_mask(analysis.name, analysis.version(keys)).all(), analysis.name
        assert pending_epochs(str(runs), cfg.run_id) == []
    finally:
        if worker is not None:
            server.stop(worker)
        os.kill(srv.pid, signal.SIGINT)
        try:
            srv.wait(timeout=30)
        finally:
            if found := re.search(r"server pid (\d+)", server_log.read_text()):  # never leave it behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(found.group(1)), signal.SIGKILL)
            server.stop(srv)
    assert srv.returncode == 0 and "Prefect server stopped." in server_log.read_text()
    assert server.port_free("127.0.0.1", port)
