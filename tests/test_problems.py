"""The tasks (``tasks.problems``): every label against brute force, the discrete-log basis of
mul/div (g a primitive root, the round trip g^log(x) = x), each task's basis, and the task as
part of a run's identity (``add`` keeps every existing id; tests/test_run_ids.py pins them)."""

import numpy as np
import pytest

from tasks.config import ConfigError, RunConfig, preset
from tasks.problems import PROBLEMS, get
from tasks.problems.multiplicative import inverse_table, log_table, operands, primitive_root

BRUTE = {  # the formula --help shows, in plain Python
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: next(c for c in range(p) if (c * b) % p == a),  # c = a / b: c·b = a
    "x2+y2": lambda a, b, p: (a**2 + b**2) % p,
    "x2+xy+y2": lambda a, b, p: (a**2 + a * b + b**2) % p,
    "x3+xy": lambda a, b, p: (a**3 + a * b) % p,
}
PRIMES = (3, 5, 7, 31, 59, 113, 997)


def test_the_registry_holds_the_issue_tasks_with_formulas():
    assert list(PROBLEMS) == list(BRUTE)
    assert all(problem.formula.endswith("mod p") for problem in PROBLEMS.values())
    with pytest.raises(ConfigError, match="unknown task 'nope'; choose one of add, sub, mul"):
        get("nope")


@pytest.mark.parametrize("name", list(BRUTE))
@pytest.mark.parametrize("p", [7, 11, 31])
def test_labels_match_brute_force(name, p):
    problem = get(name)
    values = problem.operands(p)
    a, b = np.meshgrid(np.array(values), np.array(values), indexing="ij")  # (n, n), a-major
    got = problem.label(a, b, p)
    assert got.shape == a.shape and got.dtype == np.int64
    assert got.tolist() == [[BRUTE[name](x, y, p) for y in values] for x in values]


@pytest.mark.parametrize("name", list(BRUTE))
def test_operands_and_basis_agree(name):
    problem, p = get(name), 31
    values, basis = problem.operands(p), problem.basis(p)
    assert basis.values == values and basis.n == len(values)
    expected = sorted(range(1, p)) if problem.family == "multiplicative" else list(range(p))
    assert sorted(values) == expected  # every operand once; 0 left out of mul and div
    assert basis.kind == ("residues" if problem.family == "polynomial" else "fourier")
    assert (basis.generator is not None) == (problem.family == "multiplicative")


@pytest.mark.parametrize("p", PRIMES)
def test_generator_is_the_smallest_primitive_root(p):
    g = primitive_root(p)
    assert len({pow(g, i, p) for i in range(p - 1)}) == p - 1  # g generates every unit
    assert all(len({pow(h, i, p) for i in range(p - 1)}) < p - 1 for h in range(2, g))


@pytest.mark.parametrize("p", PRIMES)
def test_discrete_log_round_trip(p):
    g, logs, powers = primitive_root(p), log_table(p), operands(p)
    units = np.arange(1, p)
    assert all(pow(g, int(logs[x]), p) == x for x in units)  # g^log(x) = x
    assert [logs[x] for x in powers] == list(range(p - 1))  # log(g^i) = i
    assert (units * inverse_table(p)[units] % p == 1).all()


@pytest.mark.parametrize("name", ["mul", "div"])
def test_mul_and_div_are_addition_and_subtraction_of_logs(name):
    p, n = 59, 58
    logs, values = log_table(p), np.array(operands(p))
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = get(name).label(values[i], values[j], p)
    assert (logs[c] == ((i + j) if name == "mul" else (i - j)) % n).all()


def test_basis_descriptions_name_the_group():
    assert get("add").basis(113).description == "Fourier basis of Z_113"
    assert get("mul").basis(113).description == "Fourier basis of Z_112 over discrete logs base 3"
    assert get("x3+xy").basis(113).description == "residues (no group law of this task)"


def test_run_ids_keep_add_and_move_for_every_other_task():
    base = preset("quick", init="native")  # runs made before the init knob: their pinned id
    assert base.task == "add" and preset("quick", task="add", init="native").run_id == base.run_id == "p59-s999-d598-cb9097f2"
    ids = {name: preset("quick", task=name).run_id for name in PROBLEMS}
    assert len(set(ids.values())) == len(PROBLEMS)  # every task its own run


def test_task_round_trips_and_old_configs_load_as_add():
    cfg = preset("smoke", task="x2+xy+y2")
    assert RunConfig.from_json(cfg.to_json()) == cfg
    old = preset("smoke").to_dict()
    del old["task"]  # a config.json written before the field existed
    assert RunConfig.from_dict(old) == preset("smoke")


@pytest.mark.parametrize("task", ["nope", 3, None])
def test_unknown_task_is_refused(task):
    with pytest.raises(ConfigError, match="task"):
        RunConfig(p=31, task=task, num_epochs=10)


def test_mul_needs_three_units():
    with pytest.raises(ConfigError, match="fewer than 3 operand values"):
        RunConfig(p=3, task="mul", num_epochs=10)
    assert RunConfig(p=5, task="div", num_epochs=10).task == "div"
