"""Security: API keys never leave the environment except as the bearer token; remote code and pickled
weights are off by default; endpoint settings are validated where users write them (YAML, flags).

The key tests run real commands (``cooper train`` mode cooper with assistant negatives, ``cooper annotate``
with a judge) against a local fake OpenAI server, then grep every byte they left behind for the key.
``tests/test_endpoints.py`` covers the client itself (reprs, missing key variable, TLS with a certificate).
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import pickle
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from cooper.cli import main
from helpers_data import DIGITS, DIGITS_INSTRUCTION
from helpers_endpoint import FakeEndpoint, Reply, chat_body

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "cooper"
KEY_ENV = "COOPER_FAULTS_TEST_KEY"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "sk-cooper-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, value)
    return value


def _wrong_rewrite(n: int, body: dict[str, Any]) -> Reply:
    """An assistant/judge stand-in: a plausible wrong solution, or a verdict for a judge prompt."""
    text = body["messages"][-1]["content"]
    if "Final verdict" in text or "verdict" in text.lower():
        return Reply(body=chat_body("Comparing.\n\nFinal verdict: Yes"))
    m = re.search(r"Reference answer: (\S+)", text)
    ref = int(m.group(1)) if m and m.group(1).isdigit() else 0
    return Reply(body=chat_body(f"The answer is {(ref + 3) % 10}."))


def _leaks(key: str, roots: list[Path], texts: dict[str, str]) -> list[str]:
    found = [name for name, text in texts.items() if key in text]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and key.encode() in path.read_bytes():
                found.append(str(path))
    return found


def _bearer_seen(srv: FakeEndpoint, key: str) -> list[str]:
    return [f"{s.method} {s.path}" for s in srv.seen if s.headers.get("authorization") == f"Bearer {key}"]


# --- keys ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_train_with_assistant_negatives_never_writes_the_key(
    key, tiny_paths, digits_policy, tmp_path, caplog, capsys
):
    out = tmp_path / "run"
    with FakeEndpoint(_wrong_rewrite) as srv:
        cfg = {
            "output_dir": str(out),
            "policy": str(digits_policy),
            "data": {"files": [str(DIGITS)], "instruction": DIGITS_INSTRUCTION, "limit": 16},
            "reward": {"mode": "cooper", "rm": str(tiny_paths.rm_dir), "rm_max_length": 128},
            "cooper": {
                "negatives": ["assistant", "perturb"],
                "assistant": {"url": srv.url, "model": "fake", "key_env": KEY_ENV, "backoff_s": 0.01},
            },
            "monitor": {"plot": True},
            "grpo": {
                "max_steps": 2,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 12,
                "save_steps": 1,  # checkpoints (with the RM state and the reward's pickle) are grepped too
                "beta": 0.0,
            },
        }
        cfg_path = tmp_path / "train.yaml"
        cfg_path.write_text(json.dumps(cfg))
        with caplog.at_level(logging.DEBUG):  # every logger, httpx and openai included
            rc = main(["-v", "train", str(cfg_path)])
    captured = capsys.readouterr()
    assert rc == 0, caplog.text[-3000:]
    chats = [s for s in srv.chat_requests if s.path.endswith("/chat/completions")]
    assert chats, "the assistant was never asked for a negative: the test would prove nothing"
    assert len(_bearer_seen(srv, key)) == len(srv.seen), "the key was not sent as the bearer token"
    assert (out / "metrics.jsonl").is_file() and list(out.glob("checkpoint-*/cooper_rm/reward.json"))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("negatives/assistant", 0) for r in metrics) > 0
    leaks = _leaks(key, [out, tmp_path], {"log": caplog.text, "stdout": captured.out, "stderr": captured.err})
    assert not leaks, f"the API key leaked into {leaks}"
    assert KEY_ENV in (out / "config.json").read_text()  # the variable's name is saved, its value is not


def test_annotate_with_a_keyed_judge_never_writes_the_key(key, tmp_path, caplog, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"r{i}",
                    "question": f"{i}+1?",
                    "reference": str(i + 1),
                    "completion": f"\\boxed{{{i + 1}}}",
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    out = tmp_path / "annotated"
    with FakeEndpoint(_wrong_rewrite) as srv, caplog.at_level(logging.DEBUG):
        rc = main(
            ["-v", "annotate", "--data", str(data), "--out", str(out), "--format", "parquet"]
            + ["--judge-url", srv.url, "--judge-model", "fake", "--judge-key-env", KEY_ENV]
        )
    captured = capsys.readouterr()
    assert rc == 0, caplog.text[-3000:]
    assert len(srv.chat_requests) == 4 and len(_bearer_seen(srv, key)) == len(srv.seen)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["judge"]["key_env"] == KEY_ENV
    leaks = _leaks(key, [out], {"log": caplog.text, "stdout": captured.out, "stderr": captured.err})
    assert not leaks, f"the API key leaked into {leaks}"


def test_a_key_in_the_url_is_never_logged_or_saved(key, tmp_path, caplog, capsys):
    """Users paste keys into URLs too (``https://user:KEY@host`` or ``?api_key=KEY``): masked everywhere."""
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "1+1?", "reference": "2", "completion": "2"}) + "\n")
    with FakeEndpoint(_wrong_rewrite) as srv, caplog.at_level(logging.DEBUG):
        url = srv.url.replace("http://", f"http://user:{key}@") + f"?api_key={key}"
        rc = main(
            [
                "annotate",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "o"),
                "--judge-url",
                url,
                "--judge-model",
                "fake",
            ]
        )
    captured = capsys.readouterr()
    assert rc == 0, caplog.text[-2000:]
    leaks = _leaks(
        key, [tmp_path / "o"], {"log": caplog.text, "stdout": captured.out, "stderr": captured.err}
    )
    assert not leaks, f"the API key leaked into {leaks}"


# --- endpoint settings where users write them ---------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "javascript:alert(1)", "http://", "127.0.0.1:8000/v1", "gopher://h/v1"]
)
def test_bad_assistant_url_in_a_train_config_fails_before_any_work(url, tmp_path, caplog):
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "data": {"files": [str(DIGITS)]},
        "cooper": {"negatives": ["assistant"], "assistant": {"url": url, "model": "m"}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg))
    with caplog.at_level(logging.ERROR):
        assert main(["train", str(path)]) == 2
    assert "url must be an http(s) URL with a host" in caplog.text
    assert not (tmp_path / "run").exists()


def test_tls_verification_is_on_unless_disabled_explicitly(tmp_path):
    from cooper.cli import build_parser
    from cooper.rl.config import load_config
    from cooper.utils.endpoints import endpoint_config_from_args

    cfg = load_config(
        None,
        [],
        output_dir=str(tmp_path),
        data={"files": [str(DIGITS)]},
        cooper={"negatives": ["assistant"], "assistant": {"url": "https://api.example.com/v1", "model": "m"}},
    )
    assert cfg.cooper.assistant.verify_tls is True
    args = [
        "annotate",
        "--data",
        "x.jsonl",
        "--out",
        "o",
        "--judge-url",
        "https://h/v1",
        "--judge-model",
        "m",
    ]
    parser = build_parser()
    assert endpoint_config_from_args(parser.parse_args(args), "judge").verify_tls is True
    assert (
        endpoint_config_from_args(parser.parse_args([*args, "--judge-insecure"]), "judge").verify_tls is False
    )


# --- remote code and pickled weights --------------------------------------------------------------------


def _cooper_modules() -> list[Any]:
    names = [
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts)
        for p in SRC.rglob("*.py")
        if p.stem not in ("__main__", "__init__")
    ]
    return [importlib.import_module(n) for n in sorted(names)]


def test_trust_remote_code_defaults_to_false_everywhere():
    from cooper.cli import build_parser
    from cooper.rl.config import TrainConfig
    from cooper.rm.pretrain import RMTrainConfig

    checked = []
    for module in _cooper_modules():
        for name, obj in vars(module).items():
            targets = [obj] if inspect.isfunction(obj) else []
            if inspect.isclass(obj):
                targets = [getattr(obj, m) for m in ("__init__", "from_pretrained") if m in vars(obj)]
            for fn in targets:
                param = inspect.signature(fn).parameters.get("trust_remote_code")
                if param is None or not getattr(fn, "__module__", "").startswith("cooper"):
                    continue
                if param.default is not inspect.Parameter.empty:  # (helpers without a default get it passed)
                    assert param.default is False, (
                        f"{module.__name__}.{name}: trust_remote_code={param.default!r}"
                    )
                    checked.append(f"{module.__name__}.{name}")
    assert len(checked) >= 6, checked  # the loaders: VerifyRM, engines, evaluate, annotate, rm_eval, ...
    assert TrainConfig.__dataclass_fields__["trust_remote_code"].default is False
    assert RMTrainConfig.__dataclass_fields__["trust_remote_code"].default is False
    # command lines: only an explicit flag turns it on
    parser = build_parser()
    for argv in (
        ["eval", "--model", "m"],
        ["annotate", "--data", "d.jsonl", "--out", "o", "--judge-url", "http://h/v1", "--judge-model", "m"],
        ["train-rm", "--data", "d.jsonl", "--out", "o"],
        ["eval-rm", "--model", "m", "--data", "d.jsonl"],
    ):
        assert parser.parse_args(argv).trust_remote_code is False, argv
    # and no source file switches it on by itself
    for path in SRC.rglob("*.py"):
        assert not re.search(r"trust_remote_code\s*=\s*True", path.read_text()), path


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


@pytest.fixture
def pickled_model_dir(tiny_paths, tmp_path) -> tuple[Path, Path]:
    """A copy of the tiny RM whose weights are a pickle that would create a canary file when loaded."""
    canary = tmp_path / "PICKLE_CANARY"
    d = tmp_path / "pickled-rm"
    shutil.copytree(tiny_paths.rm_dir, d)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _Payload(canary)}))
    return d, canary


def test_a_model_dir_with_only_pickled_weights_is_refused(pickled_model_dir, tiny_paths, tmp_path, caplog):
    from cooper.eval.engines import TransformersEngine
    from cooper.rm.model import VerifyRM
    from cooper.utils.models import ModelLoadError, check_model_dir

    d, canary = pickled_model_dir
    for load in (
        lambda: VerifyRM.from_pretrained(d, device="cpu"),
        lambda: TransformersEngine(d, device="cpu"),
    ):
        with pytest.raises(ModelLoadError, match=r"only pickled weights \(pytorch_model.bin\).*safetensors"):
            load()
    # through the command line: a clear error, exit code 2, nothing trained
    rm_rows = tmp_path / "rm.jsonl"
    rm_rows.write_text(
        json.dumps({"question": "1+1?", "reference": "2", "completion": "2", "label": 1}) + "\n"
    )
    with caplog.at_level(logging.ERROR):
        assert main(["eval", "--model", str(d), "--benchmarks", "gsm8k", "--out", str(tmp_path / "ev")]) == 2
        assert (
            main(["train-rm", "--data", str(rm_rows), "--model", str(d), "--out", str(tmp_path / "rm")]) == 2
        )
    assert caplog.text.count("only pickled weights") == 2, caplog.text
    assert not canary.exists(), "the pickle was loaded"
    assert not (tmp_path / "rm" / "model.safetensors").exists()
    # with safetensors beside the pickle the directory is fine, and the pickle is still never opened
    shutil.copy(tiny_paths.rm_dir / "model.safetensors", d / "model.safetensors")
    assert check_model_dir(d) == d
    assert VerifyRM.from_pretrained(d, device="cpu").score(["1+1?"], ["2"], ["2"])[0] > 0
    assert not canary.exists(), "the pickle was loaded"
