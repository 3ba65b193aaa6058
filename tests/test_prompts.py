"""One prompt for the policy everywhere: what GRPO training sees is byte-identical to what evaluation renders,
and SFT's prompt is the same user turn."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from cooper.data.prompts import DEFAULT_INSTRUCTION, prompt_messages, user_message
from cooper.eval.engines import PromptTemplate
from cooper.rl.build import build_dataset
from cooper.rl.sft import as_examples

QUESTIONS = ["What is 2+3?", "  A question with spaces around.  \n", "Line one.\nLine two?"]


@pytest.mark.parametrize("instruction", [DEFAULT_INSTRUCTION, "Answer with the digit.", ""])
def test_training_and_evaluation_prompts_are_byte_identical(tiny_paths, instruction):
    tokenizer = AutoTokenizer.from_pretrained(tiny_paths.policy_dir)
    rows = [{"id": str(i), "question": q, "reference": "1"} for i, q in enumerate(QUESTIONS)]
    dataset = build_dataset(rows, instruction)
    template = PromptTemplate(instruction=instruction)
    for row, q in zip(dataset, QUESTIONS, strict=True):
        trained = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        assert trained == template.render(tokenizer, q)
    sft = as_examples([{"question": q, "completion": "1"} for q in QUESTIONS], instruction)
    assert [e["prompt"] for e in sft] == [user_message(q, instruction) for q in QUESTIONS]


def test_the_user_turn():
    assert user_message("What is 2+3?", "Answer.") == "What is 2+3?\nAnswer."
    assert user_message(" What? ", "") == "What?"
    assert prompt_messages("Q", "I", system="S") == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q\nI"},
    ]
