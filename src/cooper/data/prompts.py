"""The policy's prompt: one builder for SFT, GRPO training, evaluation and the demo.

If training and evaluation prompts drifted apart (a different separator, a stray space), accuracy would drop
without any error; so every pipeline builds its user turn here.
"""

from __future__ import annotations

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
USER_TEMPLATE = "{question}\n{instruction}"


def user_message(question: str, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The user turn: the question, a newline and the instruction (the question alone without one)."""
    if not instruction.strip():
        return question.strip()
    return USER_TEMPLATE.format(question=question, instruction=instruction).strip()


def prompt_messages(
    question: str, instruction: str = DEFAULT_INSTRUCTION, system: str | None = None
) -> list[dict[str, str]]:
    """The chat messages of one prompt: an optional system turn, then :func:`user_message`."""
    turns = [{"role": "system", "content": system}] if system else []
    return [*turns, {"role": "user", "content": user_message(question, instruction)}]
