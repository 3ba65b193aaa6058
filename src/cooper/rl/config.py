"""``cooper train`` configuration: flat typed dataclasses, one per component; YAML maps onto them 1:1.

The ``grpo`` section is passed to ``trl.GRPOConfig`` unchanged (generation, loss variants, KL, PEFT,
DeepSpeed/FSDP, logging backends, checkpoint cadence are TRL's). Command-line overrides use dotted keys:
``cooper train cfg.yaml --reward.mode static_rm --grpo.learning_rate 2e-6``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from trl import GRPOConfig

from cooper.data.prompts import DEFAULT_INSTRUCTION
from cooper.rl.rm_update import RMUpdateConfig
from cooper.utils.endpoints import EndpointConfig
from cooper.utils.errors import BadInput


class ConfigError(BadInput, ValueError):
    """A config file or override is malformed; the message names the file (or override), the key and value."""


@dataclass
class DataConfig:
    """Where the prompts come from; every prompt needs a reference answer."""

    benchmark: str | None = None  # a name from cooper.data.BENCHMARKS, e.g. gsm8k_train
    files: list[str] = field(default_factory=list)  # or jsonl/json/parquet files
    columns: dict[str, str] = field(default_factory=dict)  # their column -> ours (question, reference, id)
    limit: int | None = None
    instruction: str = DEFAULT_INSTRUCTION  # appended to the question in the user message
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if bool(self.benchmark) == bool(self.files):
            raise ValueError("data: give exactly one of data.benchmark or data.files")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"data.limit must be > 0, got {self.limit}")


@dataclass
class RewardConfig:
    """Which reward the policy gets (see the README's table of modes)."""

    mode: str = "cooper"  # rule | static_rm | cooper
    rm: str | None = "tiny"  # VerifyRM directory, or "tiny"; optional in mode rule (then no rm metrics)
    rm_max_length: int = 1024
    rm_batch_size: int = 16
    verifier_timeout_s: float = 5.0
    # the rule verifier: math | choice | string | module:function | path/to/file.py:function (a user's batch
    # function, given the data's other columns as row fields; checked before any model is loaded)
    verifier: str = "math"

    def __post_init__(self) -> None:
        if self.mode not in ("rule", "static_rm", "cooper"):
            raise ValueError(f"reward.mode must be rule, static_rm or cooper, got {self.mode!r}")
        if self.mode != "rule" and not self.rm:
            raise ValueError(f"reward.mode {self.mode} needs reward.rm (a VerifyRM directory)")
        for name in ("rm_max_length", "rm_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"reward.{name} must be >= 1, got {getattr(self, name)}")
        if not self.verifier.strip():
            raise ValueError("reward.verifier must name a verifier: math, choice, string or module:function")
        if not (math.isfinite(self.verifier_timeout_s) and self.verifier_timeout_s > 0):
            raise ValueError(
                f"reward.verifier_timeout_s must be a positive number, got {self.verifier_timeout_s}"
            )


@dataclass
class CooperConfig:
    """Mode ``cooper``: pair selection, negative sources, the RM's own optimisation."""

    positive: str = "first"  # first | random
    negatives: list[str] = field(default_factory=lambda: ["perturb", "policy"])
    # "first": one pair per positive, its negative from the first source that gives a valid one (the paper);
    # "each": up to one pair per source, e.g. a policy hard negative and a perturbed positive
    negatives_from: str = "first"
    # The assistant LLM endpoint for ``assistant`` negatives (any OpenAI-compatible chat server): the same
    # fields, validation and defaults as the judge's (cooper.utils.endpoints). Those defaults (temperature 0,
    # max_tokens 512) suit a judge; configs/paper_qwen2.5_1.5b.yaml sets the assistant's.
    assistant: EndpointConfig | None = None
    rm_update: RMUpdateConfig = field(default_factory=RMUpdateConfig)

    def __post_init__(self) -> None:
        if self.positive not in ("first", "random"):
            raise ValueError(f"cooper.positive must be first or random, got {self.positive!r}")
        if not self.negatives:
            raise ValueError("cooper.negatives needs at least one source")
        if self.negatives_from not in ("first", "each"):
            raise ValueError(f"cooper.negatives_from must be first or each, got {self.negatives_from!r}")
        if "assistant" in self.negatives and self.assistant is None:
            raise ValueError(
                "cooper.negatives lists 'assistant' but cooper.assistant (url, model) is not set"
            )


@dataclass
class MonitorConfig:
    """The reward-hacking monitor."""

    hacking_gap_threshold: float = 0.3  # warn when rm_mean - rule_accuracy stays above this ...
    patience: int = 5  # ... for this many consecutive steps
    plot: bool = True  # render PNGs of the run at the end

    def __post_init__(self) -> None:
        if not (math.isfinite(self.hacking_gap_threshold) and -1.0 <= self.hacking_gap_threshold <= 1.0):
            raise ValueError(
                f"monitor.hacking_gap_threshold must be in [-1, 1] (a difference of probabilities), "
                f"got {self.hacking_gap_threshold}"
            )
        if self.patience < 1:
            raise ValueError(f"monitor.patience must be >= 1 (steps), got {self.patience}")


@dataclass
class TrainConfig:
    output_dir: str
    data: DataConfig
    policy: str = "tiny"  # local causal-LM directory, or "tiny"
    seed: int = 0
    trust_remote_code: bool = False
    reward: RewardConfig = field(default_factory=RewardConfig)
    cooper: CooperConfig = field(default_factory=CooperConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    grpo: dict[str, Any] = field(default_factory=dict)  # passed to trl.GRPOConfig unchanged

    def __post_init__(self) -> None:
        for key in ("output_dir", "seed"):
            if key in self.grpo:
                raise ValueError(f"set {key} at the top level of the config, not under grpo")


_SECTIONS = {
    "data": DataConfig,
    "reward": RewardConfig,
    "cooper": CooperConfig,
    "monitor": MonitorConfig,
    "assistant": EndpointConfig,
    "rm_update": RMUpdateConfig,
}
# Fields that name input files or model directories: a relative path written in a config file is read
# against that file's folder, so a config works from any current directory. ``output_dir`` is not among
# them: like every command's ``--out``, it is relative to where the command runs.
_INPUT_PATHS = {("policy",), ("reward", "rm"), ("data", "files"), ("data", "data_dir")}
_NOT_PATHS = {"tiny"}  # the offline tiny models


def _build(cls: type, values: Any, where: str, source: str) -> Any:
    """``cls`` from the mapping ``values``; every value converted to its field's type (see :func:`convert`).
    ``where`` is the section (``cooper.rm_update``), ``source`` the file the values came from."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section {where!r} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{source}: {_unknown_key(key, names, where)}")
        dotted = f"{where}.{key}" if where else key
        if key in _SECTIONS and value is not None:
            kwargs[key] = _build(_SECTIONS[key], value, dotted, source)
        elif key == "grpo":
            kwargs[key] = convert_grpo(value, source)
        else:
            kwargs[key] = convert(value, hints[key], dotted, source)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required key is missing
        raise ConfigError(f"{source}: section {where or '(top level)'!r}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def _unknown_key(key: str, valid: list[str], where: str) -> str:
    section = f"section {where!r}" if where else "the top level"
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r} in {section}{hint} (valid keys: {', '.join(sorted(valid))})"


def convert(value: Any, hint: Any, key: str, source: str = "config") -> Any:
    """``value`` as type ``hint`` (str, int, float, bool, a list or dict of those, ``X | None``, ``Any``).

    YAML 1.1 reads ``1e-4`` as a string, so numbers written as text are converted (``"1e-4"`` -> 1e-4,
    ``"10"`` -> 10); a value that cannot be converted is a :class:`ConfigError` naming the key and value.
    """
    try:
        return _convert(value, hint)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} = {value!r} is not {_describe(hint)}") from None


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(value)
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(value)
    if origin is list:
        items = [value] if isinstance(value, str) else value  # one file may be written without brackets
        if not isinstance(items, list | tuple):
            raise TypeError(value)
        return [_convert(v, args[0]) if args else v for v in items]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(value)
        return {k: _convert(v, args[1]) if args else v for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise TypeError(value)
    if hint is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int):
            return value
        number = float(value) if isinstance(value, str | float) else None
        if number is None or not math.isfinite(number) or not number.is_integer():
            raise ValueError(value)
        return int(number)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(value)
        return float(value) if isinstance(value, str) else value  # an int is a float's value already
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    return value  # a type cooper does not convert: the component validates it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {_describe(args[0])}s" if args else "a list"
    if origin is dict:
        return "a mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def convert_grpo(values: Any, source: str = "config") -> dict[str, Any]:
    """The ``grpo`` section checked against ``trl.GRPOConfig``'s fields: an unknown key is an error with the
    closest valid one, and each value is converted to its field's type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section 'grpo' must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}
    hints = typing.get_type_hints(GRPOConfig)
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"{source}: "
                + _unknown_key(key, list(fields), "grpo").split(" (valid keys")[0]
                + " (keys pass to trl.GRPOConfig)"
            )
        out[key] = convert(value, hints.get(key, Any), f"grpo.{key}", source)
    return out


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``1e-4`` and ``5e3`` are numbers, not strings."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text (with YAML 1.2 floats); a syntax error is a :class:`ConfigError` naming file, line, column."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise ConfigError(
            f"{where}: YAML syntax error: {problem}" + (f" ({context})" if context else "")
        ) from None


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override --{dotted}: {k} is not a section")
    node[keys[-1]] = value


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``['--reward.mode', 'rule', '--grpo.beta=0.01']`` -> ``[('reward.mode', 'rule'), ('grpo.beta', 0.01)]``."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ConfigError(f"expected --key value overrides, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"override --{key} has no value")
            value = args[i + 1]
            i += 1
        value = parse_yaml(value, f"override --{key}")
        out.append((key.replace("-", "_") if not key.startswith("grpo.") else key, value))
        i += 1
    return out


def _resolve_input_paths(tree: dict[str, Any], base: Path) -> None:
    """Relative input paths of a config file (see ``_INPUT_PATHS``, and a ``reward.verifier`` file) made
    absolute against ``base``."""

    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or not value or value in _NOT_PATHS:
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    reward = tree.get("reward")
    if isinstance(reward, dict) and isinstance(reward.get("verifier"), str):
        module, sep, func = reward["verifier"].strip().rpartition(":")
        if sep and (module.endswith(".py") or "/" in module):
            reward["verifier"] = f"{resolve(module)}:{func}"
    for keys in _INPUT_PATHS:
        node: Any = tree
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if not isinstance(node, dict) or keys[-1] not in node:
            continue
        value = node[keys[-1]]
        node[keys[-1]] = [resolve(v) for v in value] if isinstance(value, list) else resolve(value)


def load_config(
    path: str | Path | None, overrides: Sequence[tuple[str, Any]] = (), **base: Any
) -> TrainConfig:
    """The config from YAML ``path`` (or only ``base``), with dotted ``overrides`` applied, validated.

    Relative input paths in the file (``policy``, ``reward.rm``, ``data.files``, ``data.data_dir`` and the
    file of a ``reward.verifier`` written ``path/to/file.py:function``) are read against the file's folder;
    ``output_dir`` and paths given as overrides are relative to the current directory. Every value is
    converted to its field's type; mistakes raise :class:`ConfigError` naming the file (or the override) and
    the key."""
    tree: dict[str, Any] = dict(base)
    source = "config"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
        loaded = parse_yaml(text, source)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the config must be a YAML mapping, got {type(loaded).__name__}")
        _resolve_input_paths(loaded, p.resolve().parent)
        tree.update(loaded)
    for key, value in overrides:
        _set_dotted(tree, key, value)
    if overrides:
        source += " with overrides " + " ".join(f"--{k}" for k, _ in overrides)
    if "data" not in tree:
        raise ConfigError(f"{source}: missing section 'data' (data.benchmark or data.files)")
    if "output_dir" not in tree:
        raise ConfigError(f"{source}: missing output_dir")
    return _build(TrainConfig, tree, "", source)


def rm_to_load(cfg: TrainConfig) -> str | None:
    """The RM a run loads: none in mode ``rule``, where the verifier pays the policy (an RM named there is
    not loaded, so no RM metric or hacking warning can describe a reward the policy never saw)."""
    return None if cfg.reward.mode == "rule" else cfg.reward.rm


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A plain dict (for saving beside the run); holds no secrets: API keys live only in the environment."""
    return dataclasses.asdict(cfg)
