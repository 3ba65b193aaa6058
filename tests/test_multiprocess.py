"""Cooper on two processes (torchrun, gloo, CPU): the co-trained RM and the policy stay identical on every
rank, pairs come from whole prompt groups even when a group straddles ranks, and the 2-rank RM update equals
the single-process one.

The worker (tests/mp_worker.py) wraps the library's functions with spies in the worker process only and
writes what each rank saw; the assertions here compare the ranks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cooper.rl.rm_update import group_indices
from helpers_data import DIGITS, DIGITS_INSTRUCTION

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "mp_worker.py"
WORLD = 2
NUM_GENERATIONS = 8
PER_DEVICE = 12  # 2 x 12 = 24 completions = 3 groups of 8: rank 0 holds 8 + 4, rank 1 holds 4 + 8
STEPS = 3
TIMEOUT_S = 240  # per launch; each takes ~10 s on an idle 2-core machine

pytestmark = pytest.mark.slow


def _torchrun(*args: str, expect_success: bool = True, nproc: int = WORLD) -> str:
    """``torchrun --standalone --nproc_per_node NPROC tests/mp_worker.py ARGS``; its output, or a failed
    assertion that shows it. On timeout the launcher and its workers are stopped (and the test fails)."""
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        MP_WORKER_DEADLINE_S=str(TIMEOUT_S - 20),  # workers dump their stacks and exit before we kill
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        str(WORKER),
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # torchrun forwards it to the workers (each in its own session)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(
            f"torchrun timed out after {TIMEOUT_S} s: {' '.join(cmd)}\n--- output (tail) ---\n{out[-8000:]}"
        )
    assert (proc.returncode == 0) == expect_success, (
        f"torchrun exited with {proc.returncode}: {' '.join(cmd)}\n--- output (tail) ---\n{out[-8000:]}"
    )
    return out


# -- 1-3: `cooper train` in mode cooper on two ranks ------------------------------------------------
@pytest.fixture(scope="module")
def two_rank_run(tiny_paths, digits_policy, tmp_path_factory, one_torch_thread):
    """A warm-started tiny policy (so the verifier finds positives), then 3 steps of `cooper train` on 2
    ranks; returns both ranks' records and the launcher's output."""
    root = tmp_path_factory.mktemp("mp-train")
    config = root / "train.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "output_dir": str(root / "run"),
                "policy": str(digits_policy),
                "data": {"files": [str(DIGITS)], "instruction": DIGITS_INSTRUCTION, "limit": 32},
                "reward": {"mode": "cooper", "rm": str(tiny_paths.rm_dir), "rm_max_length": 128},
                # policy negatives first: they are other rollouts of the group, possibly from the other rank;
                # mini_batch_size 1: every RM mini-batch of 2 pairs splits across the ranks
                "cooper": {
                    "negatives": ["policy", "perturb"],
                    "rm_update": {"learning_rate": 1e-3, "mini_batch_size": 1, "parallel": "shard"},
                },
                "monitor": {"plot": False},
                "grpo": {
                    "learning_rate": 1e-3,
                    "per_device_train_batch_size": PER_DEVICE,
                    "num_generations": NUM_GENERATIONS,
                    "max_completion_length": 12,
                    "save_steps": 2,
                    "beta": 0.0,
                    "disable_tqdm": True,
                },
            }
        )
    )
    records = root / "records"
    out = _torchrun("train", str(records), str(config), "--grpo.max_steps", str(STEPS))
    (root / "config-path").write_text(str(config))
    found = sorted(p.name for p in records.glob("rank*.json")) if records.exists() else []
    assert found == [f"rank{r}.json" for r in range(WORLD)], f"records {found}\n{out[-8000:]}"
    return [json.loads((records / f"rank{r}.json").read_text()) for r in range(WORLD)], out, root


def test_two_ranks_really_ran(two_rank_run):
    recs, out, root = two_rank_run
    for r, rec in enumerate(recs):
        assert rec["rank"] == r and rec["rc"] == 0
        assert rec["final"]["world_size"] == WORLD, "accelerate did not see 2 processes"
        assert rec["final"]["global_step"] == STEPS
        assert len(rec["calls"]) == STEPS and len(rec["updates"]) == STEPS, out[-4000:]
    metrics = [json.loads(x) for x in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1)), "metrics.jsonl: one row per step"


def test_rm_weights_identical_on_every_rank_after_every_update(two_rank_run):
    """The RM is sharded (FSDP2): the weights its shards make up, as each rank gathers them."""
    recs, out, _ = two_rank_run
    r0, r1 = (rec["updates"] for rec in recs)
    assert all(u["layout"] == "shard" for u in r0 + r1)
    assert r0[0]["rm_before"] == r1[0]["rm_before"], "the ranks started from different RMs"
    moved = 0
    for step, (a, b) in enumerate(zip(r0, r1, strict=True), start=1):
        assert a["pairs"] == b["pairs"], f"step {step}: the ranks updated the RM on different pairs"
        assert a["rm_after"] == b["rm_after"], f"step {step}: RM weights differ across ranks\n{out[-4000:]}"
        if step > 1:  # nothing else touches the RM between updates
            assert a["rm_before"] == r0[step - 2]["rm_after"]
        moved += a["rm_after"] != a["rm_before"]
        assert (a["rm_after"] != a["rm_before"]) == bool(a["pairs"]), f"step {step}"
    assert sum(len(u["pairs"]) for u in r0) > 0, "no pair in 3 steps: the RM was never updated"
    assert moved > 0


def test_policy_weights_identical_on_every_rank_at_the_end(two_rank_run):
    recs, _, _ = two_rank_run
    finals = [rec["final"] for rec in recs]
    assert finals[0]["policy_before"] == finals[1]["policy_before"]
    assert finals[0]["policy"] == finals[1]["policy"], "policy weights differ across ranks after training"
    assert finals[0]["policy"] != finals[0]["policy_before"], "the policy did not train"


def test_pairs_come_from_whole_groups_when_groups_straddle_ranks(two_rank_run):
    recs, _, _ = two_rank_run
    straddling = 0
    for step in range(STEPS):
        calls = [rec["calls"][step] for rec in recs]
        g = calls[0]["gathered"]
        # every rank saw the same gathered lists: all ranks' rollouts, in rank order
        assert calls[1]["gathered"] == g, f"step {step + 1}: the ranks gathered different lists"
        assert g["groups"] == calls[0]["local_ids"] + calls[1]["local_ids"]
        assert g["texts"] == calls[0]["local_texts"] + calls[1]["local_texts"]
        assert [len(c["local_ids"]) for c in calls] == [PER_DEVICE] * WORLD
        straddling += len(set(calls[0]["local_ids"]) & set(calls[1]["local_ids"]))

        members = group_indices(g["groups"])
        for grp, idx in members.items():
            assert len(idx) == NUM_GENERATIONS, f"step {step + 1}: group {grp} has {len(idx)} rollouts"
            assert idx == list(range(idx[0], idx[0] + NUM_GENERATIONS)), "group members not contiguous"

        # positive = the group's first verified rollout over the WHOLE group (cooper.positive: first)
        expected = [
            (grp, next(i for i in idx if g["correct"][i]))
            for grp, idx in members.items()
            if any(g["correct"][i] for i in idx)
        ]
        pairs = recs[0]["updates"][step]["pairs"]
        assert len(pairs) <= len(expected)
        it = iter(expected)
        for question, _ref, positive, negative, source in pairs:
            hit = next(((grp, i) for grp, i in it if g["texts"][i] == positive), None)  # in group order
            assert hit is not None, f"step {step + 1}: positive {positive!r} is no group's first verified"
            grp, i = hit
            assert g["questions"][i] == question
            assert len(members[grp]) == NUM_GENERATIONS
            if source == "policy":  # a wrong rollout of the same (whole) group
                wrong = {g["texts"][j] for j in members[grp] if not g["correct"][j]}
                assert negative in wrong, f"step {step + 1}: policy negative not a wrong member of {grp}"
    assert straddling >= STEPS, "the configuration should split a prompt group across the ranks every step"


# -- 4: the RM update on 1, 2 and 4 processes, replicated (DDP) and sharded (FSDP2), is the same update ------
@pytest.fixture(scope="module")
def rm_updates(tiny_paths, tmp_path_factory):
    """``{(processes, mode): [rank 0's result, rank 1's, ...]}`` for the same two RM updates (7 + 5 pairs,
    4 pairs per optimizer step over all processes) with ``parallel`` = replicate and shard."""
    root = tmp_path_factory.mktemp("rm-update")
    results = {}
    for nproc in (1, 2, 4):
        out = root / str(nproc)
        _torchrun("rm-update", str(out), str(tiny_paths.rm_dir), "replicate,shard", nproc=nproc)
        for mode in ("replicate", "shard"):
            results[nproc, mode] = [
                torch.load(out / f"{mode}-rank{r}.pt", weights_only=True) for r in range(nproc)
            ]
    return results


def test_rm_update_is_the_same_on_1_2_and_4_processes_replicated_and_sharded(rm_updates, tiny_paths):
    """Every layout and process count gives the single-process weights (max abs diff <= 1e-5), although with
    4 processes a mini-batch of 3 or 1 pairs leaves ranks without a pair (they run a zero-weight pass)."""
    from safetensors.torch import load_file

    initial = load_file(str(tiny_paths.rm_dir / "model.safetensors"))
    reference = rm_updates[1, "replicate"][0]
    assert (
        reference["layout"] == "none" and reference["updates"] == 8
    )  # 2 updates x 2 epochs x 2 mini-batches
    for n in range(2):
        moved = max((reference["snapshots"][n][k] - initial[k]).abs().max().item() for k in initial)
        assert moved > 1e-4, f"update {n + 1}: the RM barely moved ({moved:.2e}); the comparison is vacuous"
    for (nproc, mode), ranks in rm_updates.items():
        expected_layout = {"shard": "shard", "replicate": "replicate" if nproc > 1 else "none"}[mode]
        assert all(r["layout"] == expected_layout for r in ranks), (nproc, mode)
        assert all(r["updates"] == 8 for r in ranks), (nproc, mode)
        for n in range(2):
            got, ref = ranks[0]["snapshots"][n], reference["snapshots"][n]
            assert got.keys() == ref.keys(), (nproc, mode)
            diff = max((got[k] - ref[k]).abs().max().item() for k in ref)
            assert diff <= 1e-5, f"{mode} on {nproc} processes, update {n + 1}: weights differ by {diff:.2e}"
            if mode == "replicate":  # every replica holds the same full weights
                for other in ranks[1:]:
                    assert all(torch.equal(other["snapshots"][n][k], got[k]) for k in got), (nproc, n)
            for key in ("rm/loss", "rm/pair_accuracy", "rm/valid_pairs"):
                want = reference["metrics"][n][key]
                assert ranks[0]["metrics"][n][key] == pytest.approx(want, rel=1e-5, abs=1e-7), (
                    nproc,
                    mode,
                    key,
                )


def test_sharding_splits_the_rm_state_across_processes(rm_updates):
    """FSDP2 splits parameters, gradients and AdamW states: 4 processes hold about a quarter each; DDP keeps
    a full copy on every rank."""

    def total(result):
        return result["bytes"]["parameters"] + result["bytes"]["optimizer"]

    one = total(rm_updates[1, "shard"][0])
    assert total(rm_updates[1, "replicate"][0]) == one
    for r in rm_updates[4, "replicate"]:
        assert total(r) == one
    shards = [total(r) for r in rm_updates[4, "shard"]]
    assert max(shards) <= 0.3 * one, (shards, one)
    assert sum(shards) == pytest.approx(one, rel=0.01)  # the shards add up to the whole (padding aside)


def test_a_sharded_run_resumes_on_one_process_and_again_on_two(two_rank_run):
    """The 2-process run (RM sharded; checkpoint-3, its last step) resumes on 1 process (the same 24
    completions per step: per_device_train_batch_size 24), which writes checkpoint-4, and that resumes on 2
    processes again; the RM's shards are resharded by torch.distributed.checkpoint each time. The final
    reward_model/ is one consolidated safetensors directory."""
    from cooper.rm.model import VerifyRM

    _, _, root = two_rank_run
    config = (root / "config-path").read_text()
    run = root / "run"
    batch_on_one = ["--grpo.per_device_train_batch_size", str(PER_DEVICE * WORLD)]
    one = _torchrun(
        "train", str(root / "rec-1"), config, "--resume", "--grpo.max_steps", "4", *batch_on_one, nproc=1
    )
    assert f"resuming from {run / 'checkpoint-3'} (step 3)" in one, one[-4000:]
    assert (run / "checkpoint-4" / "cooper_rm" / "COMPLETE").is_file()
    two = _torchrun("train", str(root / "rec-2"), config, "--resume", "--grpo.max_steps", "5")
    assert f"resuming from {run / 'checkpoint-4'} (step 4)" in two, two[-4000:]
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5]
    assert json.loads((root / "rec-2" / "rank0.json").read_text())["final"]["world_size"] == WORLD
    rm = VerifyRM.from_pretrained(run / "reward_model", device="cpu")
    assert rm.score(["What is 1 + 1?"], ["2"], ["The answer is 2."])[0] >= 0.0


# -- 5-6: faults --------------------------------------------------------------------------------------
def test_a_rank_that_dies_stops_the_run_without_a_hang(two_rank_run):
    """Rank 1 exits abruptly inside its second RM update while rank 0 waits in a collective: torchrun must
    report the failure and stop rank 0 (the helper fails the test on a timeout instead of hanging)."""
    _, _, root = two_rank_run
    config = (root / "config-path").read_text()
    out = _torchrun(
        "train-faulty",
        "die",
        config,
        "--grpo.max_steps",
        "4",
        "--output_dir",
        str(root / "die"),
        expect_success=False,
    )
    assert "exitcode" in out and "3" in out, out[-4000:]
    assert not (root / "die" / "summary.json").exists()  # no rank claims a finished run


def test_ranks_with_different_configs_stop_at_start_up(two_rank_run):
    _, _, root = two_rank_run
    config = (root / "config-path").read_text()
    out = _torchrun(
        "train-faulty",
        "mismatch",
        config,
        "--grpo.max_steps",
        "2",
        "--output_dir",
        str(root / "mismatch"),
        expect_success=False,
    )
    assert "the ranks were started with different configs" in out and "seed (0 on rank 0, 7)" in out, out[
        -4000:
    ]
    assert not list((root / "mismatch").glob("checkpoint-*"))  # stopped before any training step
