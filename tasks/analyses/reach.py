"""The project code a function reaches, read statically from its compiled code: what an
analysis's version hashes (``tasks.analyses.Analysis.version``).

From a function, every global name its code loads (nested functions, lambdas and comprehensions
included) is looked up in its module; a chain of attributes through modules is followed
(``data.labels``, ``fourier.fourier_basis``). What resolves to this project's code (modules
under ``ROOTS``) is kept and followed in turn: a function (decorators such as ``lru_cache``
unwrapped), a class (its whole source, and what each of its methods reaches), a module (its
whole source). An argument annotated with a project class, and a method's ``self``, resolve the
members used on them (``probe.logits()``, ``self._forward``) to that class's method, property or
cached property, so an analysis depends on the members of ``Probe`` it uses, not on the whole
class. Plain constants (strings, numbers, and tuples, sets and dicts of them) are kept by value;
a table of other things (a registry of instances) by its entries; an instance of a project
class by its class and, for a dataclass, by its fields' values (a ``Problem`` row: its name,
formula and the functions that give its operands, labels and basis, so the task registry's
code, ``tasks.problems.basis`` included, is in every analysis that reads the task). Names bound
at run time only (a method called on a value a function
computes) are not followed; for the analyses that is the model, which a checkpoint fixes.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import hashlib
import inspect
import itertools
import sys
import types
from typing import Any

ROOTS = ("flows", "tasks", "store")
_LOAD_GLOBAL = {"LOAD_GLOBAL", "LOAD_NAME"}
_LOAD_LOCAL = {"LOAD_DEREF", "LOAD_CLOSURE"}  # and every LOAD_FAST* (3.12-3.14 add variants)
_LOAD_ATTR = {"LOAD_ATTR", "LOAD_METHOD"}


def _source(obj: Any) -> str:
    return inspect.getsource(obj)


def _local(ins: dis.Instruction) -> str | None:
    """The local a load instruction reads (the second of a pair: LOAD_FAST_LOAD_FAST, 3.13+),
    None for any other instruction."""
    if not (ins.opname.startswith("LOAD_FAST") or ins.opname in _LOAD_LOCAL):
        return None
    return ins.argval[-1] if isinstance(ins.argval, tuple) else ins.argval


def _constant(value: Any) -> str | None:
    """A text for plain data that is the same in every process; None for anything else."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return repr(value)
    if isinstance(value, dict):
        value = tuple(value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        items = [_constant(v) for v in value]
        if None in items:
            return None
        if isinstance(value, (set, frozenset)):
            items.sort()
        return f"{type(value).__name__}({', '.join(items)})"
    return None


def _function(member: Any) -> types.FunctionType | None:
    """The code behind a class member or global: a function, a property's getter, a cached
    property, a static or class method; None for data."""
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    elif isinstance(member, property):
        member = member.fget
    elif isinstance(member, functools.cached_property):
        member = member.func
    if callable(member) and not inspect.isclass(member):
        member = inspect.unwrap(member)
    if inspect.isfunction(member) and not member.__code__.co_filename.startswith("<"):
        return member
    return None  # data, builtins, and methods a decorator generated (dataclass's __init__)


class _Walk:
    def __init__(self, roots: tuple[str, ...]):
        self.roots = roots
        self.found: dict[str, str] = {}

    def ours(self, obj: Any) -> bool:
        name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
        return isinstance(name, str) and name.split(".")[0] in self.roots

    def _first_time(self, key: str, text: str) -> bool:
        if key in self.found:
            return False
        self.found[key] = text
        return True

    def function(self, fn: types.FunctionType, owner: type | None = None) -> None:
        """``fn`` and what it reaches; ``owner``: the class whose method it is (types ``self``)."""
        key = f"{fn.__module__}:{fn.__qualname__}"
        if "<lambda>" in key:  # lambdas share a qualname: where they stand tells them apart
            column = max((c for _, _, c, _ in fn.__code__.co_positions() if c is not None), default=0)
            key += f"@{fn.__code__.co_firstlineno}:{column}"
        if not self._first_time(key, _source(fn)):
            return
        params = inspect.signature(fn).parameters
        typed = {}
        for i, (name, param) in enumerate(params.items()):
            if i == 0 and owner is not None:
                typed[name] = owner
            elif isinstance(param.annotation, str) and inspect.isclass(fn.__globals__.get(param.annotation)):
                typed[name] = fn.__globals__[param.annotation]
            elif inspect.isclass(param.annotation):
                typed[name] = param.annotation
        self.code(fn.__code__, fn.__globals__, {n: c for n, c in typed.items() if self.ours(c)})

    def code(self, code: types.CodeType, globals_: dict, typed: dict[str, type]) -> None:
        instructions = list(dis.get_instructions(code))
        for i, ins in enumerate(instructions):
            following = instructions[i + 1] if i + 1 < len(instructions) else None
            if ins.opname in _LOAD_GLOBAL and ins.argval in globals_:
                self.chain(globals_[ins.argval], f"{globals_['__name__']}:{ins.argval}", instructions, i + 1)
            elif _local(ins) in typed and following and following.opname in _LOAD_ATTR:
                cls = typed[_local(ins)]
                fn = _function(inspect.getattr_static(cls, following.argval, None))
                if fn is not None and self.ours(fn):
                    self.function(fn, cls)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const, globals_, typed)

    def chain(self, obj: Any, key: str, instructions: list[dis.Instruction], start: int) -> None:
        """``obj`` loaded as ``key`` and the attributes the instructions from ``start`` on take
        of it, while it is a module."""
        for ins in itertools.islice(instructions, start, None):
            if not (inspect.ismodule(obj) and ins.opname in _LOAD_ATTR and hasattr(obj, ins.argval)):
                break
            if not self.ours(obj):
                return  # a library's module: nothing of ours beneath it
            obj, key = getattr(obj, ins.argval), f"{obj.__name__}:{ins.argval}"
        self.resolve(obj, key)

    def resolve(self, obj: Any, key: str) -> None:
        if (text := _constant(obj)) is not None:
            self._first_time(key, text)
        elif inspect.ismodule(obj):
            if self.ours(obj) and self._first_time(obj.__name__, _source(obj)):
                for value in vars(obj).values():
                    if getattr(value, "__module__", None) == obj.__name__:
                        self.resolve(value, f"{obj.__name__}:{getattr(value, '__qualname__', '')}")
        elif inspect.isclass(obj):
            if self.ours(obj) and self._first_time(f"{obj.__module__}:{obj.__qualname__}", _source(obj)):
                for member in vars(obj).values():
                    fn = _function(member)
                    if fn is not None and self.ours(fn):
                        self.function(fn, obj)
        elif (fn := _function(obj)) is not None:
            if self.ours(fn):
                self.function(fn)
        elif isinstance(obj, (tuple, list, dict)):  # a table: what its entries are
            for i, item in enumerate(obj.values() if isinstance(obj, dict) else obj):
                self.resolve(item, f"{key}[{i}]")
        elif self.ours(type(obj)):  # an instance of a project class: the class, a dataclass's fields
            self.resolve(type(obj), key)
            if dataclasses.is_dataclass(obj):
                for f in dataclasses.fields(obj):
                    self.resolve(getattr(obj, f.name), f"{key}.{f.name}")
        else:  # other data a project module holds (an array, a dtype, a partial): that module's text
            module = key.split(":")[0]
            if module.split(".")[0] in self.roots and module in sys.modules:
                self._first_time(f"{module}:<text>", _source(sys.modules[module]))


def reach(fn: types.FunctionType, roots: tuple[str, ...] = ROOTS) -> dict[str, str]:
    """``{"module:qualname": source}`` (a module: its name; a constant: its value's text) of
    ``fn`` and the project code it reaches, sorted by key."""
    walk = _Walk(roots)
    walk.function(fn)
    return dict(sorted(walk.found.items()))


@functools.cache
def code_digest(fn: types.FunctionType) -> str:
    """sha256 of what ``fn`` reaches; computed once per process (the sources do not change
    under a running process)."""
    text = "\n".join(f"{key}\n{source}" for key, source in reach(fn).items())
    return hashlib.sha256(text.encode()).hexdigest()
