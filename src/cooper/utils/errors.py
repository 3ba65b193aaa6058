"""cooper's exception hierarchy for bad input, and the exit code the ``cooper`` command gives it.

Every error a user can fix by changing what they gave (a data file, a config, a model directory, an endpoint,
a flag) derives from :class:`BadInput`, whose message says what to fix and where (file, line, field, key or
flag). Each subclass keeps the built-in base it always had, so existing ``except ValueError`` /
``except RuntimeError`` / ``except FileNotFoundError`` clauses catch exactly what they caught before:

* :class:`cooper.data.rows.DataError` (ValueError): a malformed data file or row;
* :class:`cooper.rl.config.ConfigError` (ValueError): a malformed config or override;
* :class:`cooper.eval.run.EvalError` (ValueError): bad evaluation input;
* :class:`cooper.verify.registry.VerifierError` (ValueError): a verifier that is unknown or fails;
* :class:`cooper.utils.models.ModelLoadError` (RuntimeError): a model directory that cannot be loaded, and
  its :class:`~cooper.utils.models.ModelDirError` (also FileNotFoundError): no usable model directory;
* :class:`cooper.utils.endpoints.EndpointError` (RuntimeError): an endpoint misconfigured or unreachable;
* :class:`cooper.utils.state.StateError` (ValueError): a state file missing, unreadable or not as expected;
* :class:`cooper.rm.parallel.ParallelError` (ValueError): an RM that cannot be spread as asked, or a sharded
  checkpoint of another architecture;
* :class:`cooper.utils.run_identity.RunMismatch` (ValueError): an output directory that holds another run
  (``train``, ``train-rm``).

:func:`cooper.cli.main` is the one place that turns them into :data:`EXIT_BAD_INPUT` with one log line (a
traceback only with ``-v``); plain ``ValueError`` and ``FileNotFoundError``, which many checks raise, count as
bad input there too (:data:`BAD_INPUT_ERRORS`).
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Input the user must fix; the message names it. The ``cooper`` command exits with code 2."""


# What cooper.cli.main reports as bad input: cooper's own errors, and the built-in ones its checks raise.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (BadInput, ValueError, FileNotFoundError)
