"""``tdw deploy``: declare the deployments of ``deploy/prefect.yaml`` on a Prefect server.

Creates the process work pool if it is missing, then runs ``prefect deploy`` on the file from
the repository root (entrypoints are relative to it). The worker side needs nothing but this
checkout installed: the deployments' pull step, :func:`enter_checkout`, moves each flow run
into the checkout that the worker's Python imports this module from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO / "deploy" / "prefect.yaml"
POOL = "tdw-gpu"


class DeployError(RuntimeError):
    """No server to deploy to, or a pool that is not a process pool."""


def enter_checkout(directory: str | None = None) -> dict[str, str]:
    """Pull step: work in ``directory``, else in this checkout (where the worker's installed
    project lives). Returns ``{"directory": ...}`` as Prefect's own steps do."""
    os.chdir(directory or REPO)
    return {"directory": os.getcwd()}


def api_url() -> str | None:
    """The server flows report to (``PREFECT_API_URL`` or the active profile), if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def ensure_pool(name: str = POOL) -> bool:
    """Create the process work pool ``name`` unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=name, type="process", description="workbench runs on a (GPU) machine",
                base_job_template=ProcessWorker.get_default_base_job_template()))
            return True
    if pool.type != "process":
        raise DeployError(f"work pool {name!r} is a {pool.type!r} pool; the workbench deploys to process pools")
    return False


def deploy(names: list[str] | None = None, pool: str | None = None,
           prefect_file: str | os.PathLike = PREFECT_FILE, quiet: bool = False) -> int:
    """``prefect deploy`` the named deployments of ``prefect_file`` (all when ``names`` is
    empty), onto ``pool`` when given (else each one's own pool), creating the pools that are
    missing; returns its exit code. ``prefect deploy`` ignores ``--pool`` when it deploys more
    than one, so a pool override goes through a copy of the file with the pool replaced."""
    import yaml

    spec = yaml.safe_load(Path(prefect_file).read_text())
    known = [d["name"] for d in spec.get("deployments", [])]
    if unknown := sorted(set(names or []) - set(known)):
        raise DeployError(f"no deployment named {', '.join(unknown)} in {prefect_file} (it has {', '.join(known)})")
    url = api_url()
    if not url:
        raise DeployError("no Prefect server to deploy to: start one with `tdw server` and "
                          "export PREFECT_API_URL=http://127.0.0.1:4200/api")
    chosen = [d for d in spec["deployments"] if not names or d["name"] in names]
    for d in chosen:
        if pool:
            d.setdefault("work_pool", {})["name"] = pool
        name = d.get("work_pool", {}).get("name") or POOL
        created = ensure_pool(name)
        if not quiet:
            print(f"work pool {name!r} {'created' if created else 'exists'} on {url}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tdw-deploy-") as tmp:
        if pool:  # entrypoints stay relative to the repository root, the working directory
            prefect_file = Path(tmp) / "prefect.yaml"
            prefect_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        cmd = [sys.executable, "-m", "prefect", "deploy", "--no-prompt", "--prefect-file", str(prefect_file)]
        cmd += [arg for d in chosen for arg in ("--name", d["name"])]
        out = subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, text=True, capture_output=quiet)
    if out.returncode and quiet:
        sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
    return out.returncode


def next_steps(pool: str | None) -> str:
    return "\n".join([
        "Next, on the machine that runs the work (a GPU box, with this repository installed):",
        f"  export PREFECT_API_URL={api_url()}",
        f"  .venv/bin/prefect worker start --pool {pool or POOL}",
        "Then trigger a run from anywhere that reaches the server:",
        "  prefect deployment run 'pipeline/pipeline' -p preset=canonical",
    ])


def add_parser(commands) -> None:
    """``tdw deploy`` on the ``tdw`` command's subparsers."""
    sub = commands.add_parser(
        "deploy", help="declare the pipeline and sweep deployments on a Prefect server",
        description="Create the process work pool if missing and deploy deploy/prefect.yaml to the "
                    "server at PREFECT_API_URL (start one with `tdw server`). Then start a worker "
                    "on the GPU machine: prefect worker start --pool tdw-gpu.")
    sub.add_argument("names", nargs="*", metavar="NAME",
                     help="deployments to declare: pipeline, sweep (default: all)")
    sub.add_argument("--pool", help=f"work pool (default: the file's, {POOL})")
    sub.add_argument("--file", default=str(PREFECT_FILE), help="prefect.yaml to deploy from")


def command(args) -> int:
    if not os.path.isfile(args.file):
        raise DeployError(f"no deployment file {args.file}")
    rc = deploy(args.names, args.pool, args.file)
    if rc == 0:
        print(next_steps(args.pool))
    return 0 if rc == 0 else 1
