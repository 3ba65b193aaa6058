"""``cooper train`` configuration: flat typed dataclasses, one per component; YAML maps onto them 1:1.

The ``grpo`` section is passed to ``trl.GRPOConfig`` unchanged (generation, loss variants, KL, PEFT,
DeepSpeed/FSDP, logging backends, checkpoint cadence are TRL's). Command-line overrides use dotted keys:
``cooper train cfg.yaml --reward.mode static_rm --grpo.learning_rate 2e-6``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cooper.cooper import RMUpdateConfig
from cooper.endpoints import EndpointConfig

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


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
    """Which reward the policy gets (see DESIGN.md's table of modes)."""

    mode: str = "cooper"  # rule | static_rm | cooper
    rm: str | None = "tiny"  # VerifyRM directory, or "tiny"; optional in mode rule (then no rm metrics)
    rm_max_length: int = 1024
    rm_batch_size: int = 16
    verifier_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in ("rule", "static_rm", "cooper"):
            raise ValueError(f"reward.mode must be rule, static_rm or cooper, got {self.mode!r}")
        if self.mode != "rule" and not self.rm:
            raise ValueError(f"reward.mode {self.mode} needs reward.rm (a VerifyRM directory)")


# The assistant LLM endpoint for ``assistant`` negatives (any OpenAI-compatible chat server) is an
# EndpointConfig: the same fields, validation and defaults as the judge's (cooper.endpoints). Those defaults
# (temperature 0, max_tokens 512) suit a judge; configs/paper_qwen2.5_1.5b.yaml sets the assistant's.
AssistantConfig = EndpointConfig  # the old name


@dataclass
class CooperConfig:
    """Mode ``cooper``: pair selection, negative sources, the RM's own optimisation."""

    positive: str = "first"  # first | random
    negatives: list[str] = field(default_factory=lambda: ["perturb", "policy"])
    # "first": one pair per positive, its negative from the first source that gives a valid one (the paper);
    # "each": up to one pair per source, e.g. a policy hard negative and a perturbed positive
    negatives_from: str = "first"
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


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        if key in _SECTIONS and value is not None and key != "grpo":
            value = _build(_SECTIONS[key], value, f"{where}.{key}" if where else key)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{where or 'config'}: {e}") from None


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted}: {k} is not a section")
    node[keys[-1]] = value


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``['--reward.mode', 'rule', '--grpo.beta=0.01']`` -> ``[('reward.mode', 'rule'), ('grpo.beta', 0.01)]``."""
    import yaml

    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ValueError(f"expected --key value overrides, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ValueError(f"override --{key} has no value")
            value = args[i + 1]
            i += 1
        out.append((key.replace("-", "_") if not key.startswith("grpo.") else key, yaml.safe_load(value)))
        i += 1
    return out


def load_config(path: str | Path | None, overrides: list[tuple[str, Any]] = (), **base: Any) -> TrainConfig:
    """The config from YAML ``path`` (or only ``base``), with dotted ``overrides`` applied, validated."""
    import yaml

    tree: dict[str, Any] = dict(base)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{p}: the config must be a YAML mapping")
        tree.update(loaded)
    for key, value in overrides:
        _set_dotted(tree, key, value)
    if "data" not in tree:
        raise ValueError("config: missing section 'data' (data.benchmark or data.files)")
    if "output_dir" not in tree:
        raise ValueError("config: missing output_dir")
    return _build(TrainConfig, tree, "")


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A plain dict (for saving beside the run); holds no secrets: API keys live only in the environment."""
    return dataclasses.asdict(cfg)
