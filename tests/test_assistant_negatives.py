"""The `assistant` negative source: against a misbehaving fake endpoint (faults fall through to the next
source, counted, bounded in time), against a real `transformers serve`, and inside `cooper train`."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from cooper.rl.negatives import NEGATIVE_SOURCES, AssistantSource, NegativeRequest, make_negatives
from cooper.utils.endpoints import ChatClient, EndpointConfig
from helpers_endpoint import FakeEndpoint, Reply, chat_body, steer_model, transformers_serve

REQS = [
    NegativeRequest("Ann has 2 pens and gets 3 more. How many?", "5", "2 + 3 = 5. The answer is \\boxed{5}."),
    NegativeRequest(
        "Ben has 4 cards and gets 4 more. How many?", "8", "4 + 4 = 8. The answer is \\boxed{8}."
    ),
]


def _client(url: str, model: str = "assistant", **kw) -> ChatClient:
    return ChatClient(
        EndpointConfig(
            url=url,
            model=model,
            timeout_s=kw.pop("timeout_s", 2.0),
            max_retries=kw.pop("max_retries", 1),
            backoff_s=0.01,
            **kw,
        )
    )


def _sources(client: ChatClient) -> dict:
    return {**NEGATIVE_SOURCES, "assistant": AssistantSource(client)}


def test_assistant_rewrites_become_negatives():
    with FakeEndpoint(lambda n, body: Reply(body=chat_body("2 + 3 = 6. The answer is \\boxed{6}."))) as ep:
        made, counts = make_negatives(
            REQS[:1], ["assistant", "perturb"], _sources(_client(ep.url)), random.Random(0)
        )
        prompt = ep.chat_requests[0].body["messages"][0]["content"]
    assert made == [("2 + 3 = 6. The answer is \\boxed{6}.", "assistant")]
    assert counts["negatives/assistant"] == 1 and counts["negatives/perturb"] == 0
    assert "WRONG final answer" in prompt and REQS[0].positive in prompt and "Reference answer: 5" in prompt


@pytest.mark.parametrize(
    ("reply", "counter"),
    [
        (Reply(status=500, body={"error": "boom"}), "negatives/assistant_empty"),
        (Reply(body="{not json"), "negatives/assistant_empty"),
        (Reply(body=chat_body("")), "negatives/assistant_empty"),
        (Reply(body=chat_body(None)), "negatives/assistant_empty"),
        (Reply(body=chat_body("x"), delay_s=3.0), "negatives/assistant_empty"),  # slower than the timeout
        ("echo", "negatives/assistant_rejected"),  # returns the positive itself: a "negative" that is correct
    ],
)
def test_assistant_faults_fall_through_to_the_next_source(reply, counter):
    def respond(n, body):
        if reply != "echo":
            return reply
        return Reply(body=chat_body(body["messages"][0]["content"].split("Correct solution:\n")[1]))

    with FakeEndpoint(respond) as ep:
        client = _client(ep.url, timeout_s=0.5)
        start = time.monotonic()
        made, counts = make_negatives(REQS, ["assistant", "perturb"], _sources(client), random.Random(0))
        elapsed = time.monotonic() - start
    assert all(m is not None and m[1] == "perturb" for m in made)
    assert counts[counter] == 2 and counts["negatives/perturb"] == 2 and counts["negatives/none"] == 0
    assert elapsed < 10  # retries within the deadline, never a hang


def test_unreachable_assistant_fails_before_training(tmp_path):
    from cooper.rl.build import build_reward
    from cooper.rl.config import load_config
    from cooper.utils.endpoints import EndpointError

    cfg = load_config(
        None,
        [],
        output_dir=str(tmp_path),
        data={"files": ["x.jsonl"]},
        reward={"mode": "cooper", "rm": "unused"},
        cooper={
            "negatives": ["assistant", "perturb"],
            "assistant": {"url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 1.0, "max_retries": 0},
        },
    )
    with pytest.raises(EndpointError):
        build_reward(cfg, None)


@pytest.mark.slow
def test_assistant_against_a_real_transformers_serve(tmp_path, tiny_paths):
    wrong = "2 + 3 = 6. The answer is \\boxed{6}."
    model = steer_model(tiny_paths.policy_dir, tmp_path / "assistant", {wrong: 1.0})
    with transformers_serve(model, tmp_path) as served:
        client = _client(served.url, str(model), timeout_s=30.0, max_tokens=32)
        client.preflight()
        made, counts = make_negatives(REQS, ["assistant", "perturb"], _sources(client), random.Random(0))
        posts = served.log_path.read_text().count("POST /v1/chat/completions")
    assert posts == 2 and client.stats["failures"] == 0
    assert made[0] == (wrong, "assistant")  # 6 is wrong for reference 5: accepted
    # for the second question, "6" is also wrong (reference 8), so it is accepted too
    assert made[1] == (wrong, "assistant") and counts["negatives/assistant"] == 2


@pytest.mark.slow
def test_training_survives_a_failing_assistant(tmp_path, tiny_paths):
    """`cooper train` (mode cooper) with an assistant that only returns 500s: every pair falls back to
    perturb, the failures are counted in metrics.jsonl, and training finishes."""
    from cooper.rl.config import load_config
    from cooper.rl.train import train

    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"Say {i % 10}.", "reference": str(i % 10)}) + "\n"
            for i in range(8)
        )
    )
    with FakeEndpoint(lambda n, body: Reply(status=500, body={"error": "down"})) as ep:
        cfg = load_config(
            None,
            [],
            output_dir=str(tmp_path / "run"),
            policy=str(tiny_paths.policy_dir),
            data={"files": [str(data)]},
            reward={"mode": "cooper", "rm": str(tiny_paths.rm_dir), "rm_max_length": 128},
            cooper={
                "negatives": ["assistant", "perturb"],
                "assistant": {
                    "url": ep.url,
                    "model": "m",
                    "timeout_s": 1.0,
                    "max_retries": 1,
                    "backoff_s": 0.01,
                },
            },
            monitor={"plot": False},
            grpo={
                "max_steps": 2,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 8,
                "save_strategy": "no",
            },
        )
        # the random tiny policy rarely answers right; make every rollout a "positive" so pairs are asked for
        from cooper.rl import reward as rewards

        real = rewards.is_correct_batch
        rewards.is_correct_batch = lambda texts, refs, **kw: [True] * len(texts)
        try:
            summary = train(cfg)
        finally:
            rewards.is_correct_batch = real
    rows = [json.loads(line) for line in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert summary["steps"] == 2 and [r["step"] for r in rows] == [1, 2]
    assert sum(r.get("negatives/assistant_empty", 0) for r in rows) >= 2
    assert summary["totals"]["negatives/assistant_empty"] >= 2
    assert len(ep.chat_requests) >= 2
