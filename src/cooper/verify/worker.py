"""The verifier worker process (``python -m cooper.verify.worker``): reads batches of (response, reference)
as JSON lines on stdin and writes one verdict per item on stdout, each under an interval-timer deadline.
Started by :class:`cooper.verify.pool.VerifierPool`; imports only :mod:`cooper.verify.rule`."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from cooper.verify.registry import BUILTIN_VERIFIERS, DEFAULT_VERIFIER, VerifierError, judge_item
from cooper.verify.rule import judge


class _SoftTimeout(BaseException):
    """Raised by the interval timer; a BaseException so math-verify's ``except Exception`` lets it by."""


def _worker_main() -> None:
    import signal

    out = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="surrogatepass", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def on_alarm(signum: int, frame: object) -> None:
        raise _SoftTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    judge("The answer is $\\frac{1}{2}$", "0.5")  # warm up sympy before saying ready
    out.write(json.dumps("ready") + "\n")
    for line in sys.stdin:
        msg = json.loads(line)
        soft = float(msg["soft_timeout"])
        verifier = msg.get("verifier", DEFAULT_VERIFIER)
        for idx, response, reference, fields in msg["items"]:
            started = time.perf_counter()
            try:
                signal.setitimer(signal.ITIMER_REAL, soft)
                verdict = judge_item(verifier, response, reference, fields)
            except VerifierError as exc:  # a user's verifier failed: the caller raises, naming it
                verdict = {"correct": False, "extracted_answer": None, "reference_answer": None}
                verdict["note"] = verdict["error"] = str(exc)
            except _SoftTimeout:
                verdict = {"correct": False, "extracted_answer": None, "reference_answer": None}
                verdict["note"] = f"timed out after {soft:.2f} s"
                if verifier not in BUILTIN_VERIFIERS:  # a user's verifier that hangs fails the batch, by name
                    verdict["error"] = (
                        f"verifier {verifier!r} gave no verdict within {soft:.2f} s (it hangs?)"
                    )
            except Exception as exc:  # noqa: BLE001 - any failure of one item is that item's False
                verdict = {"correct": False, "extracted_answer": None, "reference_answer": None}
                verdict["note"] = f"error: {type(exc).__name__}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            verdict["ms"] = round((time.perf_counter() - started) * 1e3, 4)
            out.write(json.dumps([idx, verdict]) + "\n")


if __name__ == "__main__":
    _worker_main()
