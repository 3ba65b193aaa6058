"""Which verifier judges a batch: ``math`` (the default), ``choice``, ``string``, or a user's own.

A user's verifier is named ``module:function`` (importable) or ``path/to/file.py:function``. It is a batch
function ``(responses, references, **row_fields) -> list[bool]``: ``row_fields`` are the rows' other columns,
one list each (``answer_type``, ``is_multiple_answer``, whatever the data carries). It runs in the same
worker processes as the built-in verifiers, one item at a time under the same deadline; if it raises, hangs,
or returns anything but one bool per response, the batch fails with a :class:`VerifierError` naming it,
never with a silent "correct".
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from cooper.utils.errors import BadInput

BUILTIN_VERIFIERS = ("math", "choice", "string")
DEFAULT_VERIFIER = "math"
BUILTIN_FIELDS = ("answer_type", "is_multiple_answer")  # the row fields the built-in verifiers read
BatchVerifier = Callable[..., Any]
_LOADED: dict[str, BatchVerifier] = {}


class VerifierError(BadInput, ValueError):
    """A verifier cannot be used: unknown, not importable, or it raised, hung or returned a bad result."""


def check_verifier(spec: str) -> str:
    """``spec`` if it names a usable verifier (a user's function is imported to check it), else
    :class:`VerifierError` saying what is wrong and what is accepted."""
    if not isinstance(spec, str) or not spec.strip():
        raise VerifierError(f"verifier must be a name, got {spec!r}")
    spec = spec.strip()
    if spec in BUILTIN_VERIFIERS:
        return spec
    load_verifier(spec)
    return spec


def worker_spec(spec: str) -> str:
    """``spec`` as the verifier's worker processes must see it: a ``file.py:function`` path made absolute
    against this process's current directory (the workers may have been started in another one)."""
    module_name, sep, func_name = spec.rpartition(":")
    if spec in BUILTIN_VERIFIERS or not sep or not (module_name.endswith(".py") or "/" in module_name):
        return spec
    return f"{Path(module_name).expanduser().resolve()}:{func_name}"


def row_fields(
    verifier: str, rows: Sequence[Mapping[str, Any]], exclude: Collection[str] = ()
) -> dict[str, Any]:
    """The ``row_fields`` of :func:`~cooper.verify.pool.is_correct_batch` for ``rows``: one list per column.

    The built-in verifiers get ``answer_type`` and ``is_multiple_answer`` (where any row has them); a user's
    verifier gets every column any row has, except ``exclude`` (the columns passed as responses and
    references). A row without a column gives None there."""
    if verifier in BUILTIN_VERIFIERS:
        names = [f for f in BUILTIN_FIELDS if any(f in r for r in rows)]
    else:
        names = list(dict.fromkeys(k for r in rows for k in r if k not in exclude))
    return {name: [r.get(name) for r in rows] for name in names}


def column_fields(verifier: str, columns: Mapping[str, Any], n: int) -> dict[str, Any]:
    """The ``row_fields`` for ``verifier`` from ``columns`` that hold one value per row (lists of ``n``
    values; anything else is left out): all of them for a user's verifier, ``answer_type`` and
    ``is_multiple_answer`` for the built-in ones."""
    keep = {k: list(v) for k, v in columns.items() if isinstance(v, list | tuple) and len(v) == n}
    if verifier in BUILTIN_VERIFIERS:
        return {k: v for k, v in keep.items() if k in BUILTIN_FIELDS}
    return keep


def load_verifier(spec: str) -> BatchVerifier:
    """The function a ``module:function`` or ``file.py:function`` spec names (imported once per process)."""
    if spec in _LOADED:
        return _LOADED[spec]
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name.isidentifier():
        raise VerifierError(
            f"unknown verifier {spec!r}: use one of {', '.join(BUILTIN_VERIFIERS)}, or module:function "
            "(or path/to/file.py:function) for your own batch verifier"
        )
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise VerifierError(f"verifier {spec!r}: file {str(path)!r} not found")
            name = f"cooper_user_verifier_{abs(hash(str(path)))}"
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise VerifierError(f"verifier {spec!r}: cannot load {str(path)!r} as a Python module")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except VerifierError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to import the user's module is reported by name
        raise VerifierError(
            f"verifier {spec!r}: importing {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise VerifierError(f"verifier {spec!r}: {module_name!r} has no function {func_name!r}")
    _LOADED[spec] = fn
    return fn


def run_user_verifier(spec: str, response: str, reference: str, fields: dict[str, Any]) -> bool:
    """One item through a user's batch verifier; a result that is not exactly one bool is a VerifierError."""
    fn = load_verifier(spec)
    try:
        out = fn([response], [reference], **{k: [v] for k, v in fields.items()})
    except Exception as e:  # noqa: BLE001 - the user's code: whatever it raises is reported by name
        raise VerifierError(f"verifier {spec!r} raised {type(e).__name__}: {e}") from None
    if not isinstance(out, list | tuple) or len(out) != 1:
        got = (
            f"a {type(out).__name__} of length {len(out)}"
            if isinstance(out, list | tuple)
            else repr(out)[:80]
        )
        raise VerifierError(
            f"verifier {spec!r} must return a list with one bool per response; for 1 it returned {got}"
        )
    value = out[0]
    if not isinstance(value, bool) and type(value).__name__ != "bool_":  # numpy.bool_ is fine too
        raise VerifierError(
            f"verifier {spec!r} must return bools; it returned {type(value).__name__} {value!r:.40}"
        )
    return bool(value)


def judge_item(verifier: str, response: str, reference: str, fields: dict[str, Any]) -> dict[str, Any]:
    """One verdict dict (see :func:`cooper.verify.rule.judge`) from the named verifier. The built-in ones read
    the row fields ``answer_type`` and ``is_multiple_answer``; ``choice`` and ``string`` fix the type."""
    from cooper.verify.rule import judge

    if verifier in BUILTIN_VERIFIERS:
        kind = fields.get("answer_type") if verifier == DEFAULT_VERIFIER else verifier
        multiple = fields.get("is_multiple_answer")
        return judge(
            response,
            reference,
            answer_type=kind if isinstance(kind, str) else None,
            multiple=multiple if isinstance(multiple, bool) else None,
        )
    ok = run_user_verifier(verifier, response, reference, fields)
    return {
        "correct": ok,
        "extracted_answer": None,
        "reference_answer": reference,
        "note": None,
        "answers": [],
        "references": [reference],
        "answer_type": None,
        "rule": verifier,
    }
