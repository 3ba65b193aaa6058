"""The reward model across processes, on PyTorch's own engines, and its sharded checkpoints.

Three layouts (``cooper.rm_update.parallel``), chosen by :func:`resolve_parallel`:

* ``shard``: FSDP2 (``torch.distributed.fsdp.fully_shard``), one unit per decoder layer plus the root.
  Parameters, gradients and AdamW states are split across the ranks; each forward all-gathers a layer's
  weights and each backward reduce-scatters its gradients. On a bf16 GPU the compute is bf16 and the reduce
  and master weights fp32 (``MixedPrecisionPolicy``). On one process FSDP2 runs over a one-rank group.
* ``replicate``: DDP (``torch.nn.parallel.DistributedDataParallel``): a full copy per rank, gradients
  all-reduced in buckets during the backward.
* ``none``: one process, a plain module (what ``auto`` and ``replicate`` mean on one process).

FSDP2's and DDP's forwards and backwards are collective: every rank must make the same number of them.
:class:`cooper.rl.rm_update.RMUpdater` and :meth:`cooper.rm.model.VerifyRM.score_logits` see to that.

Checkpoints (:func:`save_sharded`, :func:`load_sharded`) go through ``torch.distributed.checkpoint`` (DCP):
every rank writes its own shards, and a checkpoint saved on W processes loads on any other number (DCP
reshards). Loading reads tensors only; nothing in a checkpoint is executed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import StorageMeta, TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel
from transformers.integrations import deepspeed as hf_deepspeed

from cooper.utils.dist import rank_and_world
from cooper.utils.errors import BadInput

log = logging.getLogger(__name__)

PARALLEL_MODES = ("auto", "replicate", "shard")


class ParallelError(BadInput, ValueError):
    """The RM cannot be spread over the processes as asked (names the module), or a sharded checkpoint does
    not fit the model (names the key)."""


def resolve_parallel(parallel: str, world: int) -> str:
    """``shard``, ``replicate`` or ``none`` for the requested mode and the number of processes."""
    if parallel not in PARALLEL_MODES:
        raise ParallelError(f"parallel must be one of {', '.join(PARALLEL_MODES)}, got {parallel!r}")
    if parallel == "shard":
        return "shard"
    if world == 1:
        return "none"
    return "shard" if parallel == "auto" else "replicate"


def decoder_layers(model: Any) -> list[Any]:
    """The model's repeated blocks, by the class names transformers declares it must not split
    (``_no_split_modules``): the FSDP2 units. A :class:`ParallelError` naming the model if there are none."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ParallelError(
            f"FSDP2 cannot wrap the reward model {type(model).__name__}: it declares no decoder layer class "
            f"(transformers' _no_split_modules is {sorted(names) or 'empty'}), so it has no units to shard; use "
            "cooper.rm_update.parallel: replicate"
        )
    return layers


def ensure_process_group(device: torch.device) -> bool:
    """Initialise a one-process group if none exists (FSDP2 over one rank needs one); True if it did."""
    if dist.is_initialized():
        return False
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    log.info("initialised a one-process group (%s) for the sharded reward model", backend)
    return True


def shard(model: Any, device: torch.device, *, bf16: bool = False) -> Any:
    """``model`` sharded in place with FSDP2: each decoder layer a unit, then the root (embeddings, final
    norm, score head). ``bf16``: compute in bf16, reduce gradients and keep master weights in fp32."""
    layers = decoder_layers(model)
    ensure_process_group(device)
    _, world = rank_and_world()
    mesh = init_device_mesh(device.type, (world,))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    try:
        for layer in layers:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:
        raise ParallelError(
            f"FSDP2 cannot wrap the reward model {type(model).__name__} ({type(e).__name__}: {e}); use "
            "cooper.rm_update.parallel: replicate"
        ) from e
    return model


def replicate(model: Any, device: torch.device) -> DistributedDataParallel:
    """A DDP wrapper around ``model`` (which stays the module that holds the weights): train through the
    wrapper, score through ``model``. The gradients are views into DDP's buckets (no second copy)."""
    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)


@contextlib.contextmanager
def outside_zero3() -> Iterator[None]:
    """Models loaded inside are not partitioned by DeepSpeed ZeRO-3's ``zero.Init``.

    Once a ``TrainingArguments`` with a ZeRO-3 config exists, transformers partitions every model
    ``from_pretrained`` builds; the RM would then hold empty parameter shards that neither FSDP2, DDP nor its
    own AdamW can train. The registration is set aside while the RM loads and restored after."""
    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    config = ref() if ref is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def is_sharded(model: Any) -> bool:
    """``model`` was sharded by FSDP2."""
    return isinstance(model, FSDPModule)


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The full, unsharded weights on the CPU: on rank 0 only when ``model`` is sharded (every rank must call
    it then, it gathers), otherwise the module's own state dict."""
    if not is_sharded(model):
        return dict(model.state_dict())
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return cast("dict[str, torch.Tensor]", get_model_state_dict(model, options=options))


def local_bytes(model: Any, optimizer: Any) -> dict[str, int]:
    """Bytes this process holds of the model's parameters, their gradients and the optimizer's state (the
    local shard of each sharded tensor)."""

    def size(t: Any) -> int:
        if not isinstance(t, torch.Tensor):
            return 0
        local = t.to_local() if hasattr(t, "to_local") else t
        return int(local.numel() * local.element_size())

    params = list(model.parameters())
    return {
        "parameters": sum(size(p) for p in params),
        "gradients": sum(size(p.grad) for p in params),
        "optimizer": sum(size(v) for state in optimizer.state.values() for v in state.values()),
    }


# -- sharded checkpoints --------------------------------------------------------------------------------
def save_sharded(model: Any, optimizer: Any, path: Path) -> None:
    """The model's weights and the optimizer's state into ``path`` with DCP; every rank calls it."""
    model_state, optim_state = get_state_dict(model, optimizer)
    with _quiet_single_process():
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(path), no_dist=_no_dist())


def load_sharded(model: Any, optimizer: Any, path: Path) -> None:
    """Restore :func:`save_sharded`'s ``path`` into ``model`` and ``optimizer``, on any number of processes;
    every rank calls it. A checkpoint of another architecture is a :class:`ParallelError` naming the first
    mismatching key, raised before any tensor is read."""
    check_sharded_checkpoint(model, path)
    model_state, optim_state = get_state_dict(model, optimizer)  # the layout to load into
    state: dict[str, Any] = {"model": model_state, "optim": optim_state}
    try:
        with _quiet_single_process():
            dcp.load(state, storage_reader=_safe_reader(path), planner=_safe_planner(), no_dist=_no_dist())
    except CheckpointException as e:  # DCP gathers every rank's failure into one (a BaseException)
        errors = [x[0] if isinstance(x, tuple) else x for x in e.failures.values()]  # (error, frames)
        failures = [f"{type(x).__name__}: {x}".rstrip(": ") for x in errors] or [str(e)]
        raise ParallelError(f"unreadable sharded checkpoint {path} ({failures[0].splitlines()[0]})") from None
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def sharded_weights(path: Path) -> dict[str, torch.Tensor]:
    """The full weights saved in ``path`` by :func:`save_sharded`, as CPU tensors, without a model (one
    process; for inspecting or exporting a checkpoint's RM)."""
    saved = _safe_reader(path).read_metadata().state_dict_metadata
    weights = {
        k.removeprefix("model."): torch.empty(tuple(m.size), dtype=m.properties.dtype)
        for k, m in saved.items()
        if k.startswith("model.") and isinstance(m, TensorStorageMetadata)
    }
    with _quiet_single_process():
        dcp.load({"model": weights}, storage_reader=_safe_reader(path), planner=_safe_planner(), no_dist=True)
    return weights


def check_sharded_checkpoint(model: Any, path: Path) -> None:
    """The weights saved in ``path`` have exactly this model's names and full shapes."""
    try:
        saved = _safe_reader(path).read_metadata().state_dict_metadata
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise ParallelError(f"unreadable sharded checkpoint {path} ({type(e).__name__}: {e})") from None
    shapes = {
        k.removeprefix("model."): tuple(m.size)
        for k, m in saved.items()
        if k.startswith("model.") and isinstance(m, TensorStorageMetadata)
    }
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}  # a DTensor's shape is the full one
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise ParallelError(
            f"the reward model saved in {path} is another architecture: "
            + (f"it lacks {missing[0]}" if missing else f"it has {unexpected[0]}, which this model lacks")
            + f" ({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise ParallelError(
                f"the reward model saved in {path} is another architecture: {key} has shape "
                f"{list(shapes[key])} there and {list(shape)} here"
            )


# -- reading a DCP checkpoint without executing anything from it ---------------------------------------
# torch.distributed.checkpoint unpickles its .metadata file with plain pickle and loads non-tensor items
# (the optimizer's hyperparameters) with torch.load(weights_only=False): either could run code placed in a
# checkpoint. cooper reads the metadata with an unpickler that builds only DCP's own metadata classes and the
# few torch values they hold, and the other items with weights_only=True.
_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata",
        "MetadataIndex",
        "StorageMeta",
        "TensorProperties",
        "TensorStorageMetadata",
        "ChunkStorageMetadata",
        "BytesStorageMetadata",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a checkpoint's metadata; refused")


class _SafeReader(FileSystemReader):
    """DCP's file reader, with the metadata read by :class:`_MetadataUnpickler`."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        with open(Path(self.path) / ".metadata", "rb") as f:
            metadata = _MetadataUnpickler(f).load()
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class _SafePlanner(DefaultLoadPlanner):
    """DCP's load planner, with the non-tensor items loaded ``weights_only``."""

    def load_bytes(self, read_item: Any, value: Any) -> None:
        # weights_only: plain values only; what DCP then unpickles is our own re-serialisation of them
        clean = io.BytesIO()
        torch.save(torch.load(value, weights_only=True), clean)
        clean.seek(0)
        super().load_bytes(read_item, clean)


def _safe_reader(path: Path) -> FileSystemReader:
    return _SafeReader(str(path))


def _safe_planner() -> DefaultLoadPlanner:
    return _SafePlanner()


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """DCP warns on every call without a process group that it assumes one process: that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _no_dist() -> bool:
    _, world = rank_and_world()
    return world == 1
