"""What every fuzz case asserts, and the session's count of cases by entry point and kind.

A case hands one generated bad input to one entry point and asserts its outcome:

- Python API (:func:`api_error`): a :class:`scratchcnn.ScratchCNNError` subclass whose message
  names what is wrong; any other exception is a raw traceback, no exception a bad input
  accepted silently;
- command line (:func:`cli_error`): ``scratchcnn.app.cli.main(argv)`` in-process returns a
  non-zero status and stderr is one line ``scratchcnn <command>: error: ...`` (a spec's pointer
  lines aside), with no "Traceback" anywhere;
- web (:func:`web_error`): a 4xx answer whose JSON body is ``{"detail": "..."}``, never a 5xx.

Every case is counted in :data:`CASES` (entry point, kind of input, outcome); ``conftest.py``
writes the counts to ``$SCRATCHCNN_FUZZ_REPORT`` (docs/reliability.md) at the end of the session.
"""
import contextlib
import io
import re
from collections import Counter

import pytest

import scratchcnn as sc

#: (entry point, kind of bad input) -> cases tried
CASES = Counter()
#: (entry point, outcome) -> cases; outcome: "clear error", "raw traceback", "5xx", "accepted"
OUTCOMES = Counter()


def record(entry, kind, outcome="clear error"):
    CASES[(entry, kind)] += 1
    OUTCOMES[(entry, outcome)] += 1


def _fail(entry, kind, outcome, text):
    record(entry, kind, outcome)
    pytest.fail(f"[{entry} / {kind}] {outcome}: {text}", pytrace=False)


def api_error(entry, kind, fn, *args, match=None, error=sc.ScratchCNNError, **kwargs):
    """Call ``fn(*args, **kwargs)``; assert it raises ``error`` (a ScratchCNNError) whose message
    matches ``match`` (a regex, case-insensitive). Returns the exception."""
    try:
        result = fn(*args, **kwargs)
    except error as exc:
        msg = str(exc)
        if not msg.strip():
            _fail(entry, kind, "empty message", repr(exc))
        if match is not None and not re.search(match, msg, re.I | re.S):
            _fail(entry, kind, "unclear message", f"{type(exc).__name__}: {msg[:500]!r} does not match {match!r}")
        record(entry, kind)
        return exc
    except Exception as exc:  # noqa: BLE001 - that is the point
        _fail(entry, kind, "raw traceback", f"{type(exc).__name__}: {str(exc)[:500]}")
    _fail(entry, kind, "accepted", f"no error; returned {result!r}"[:500])


def run_cli(argv):
    """``(status, stdout, stderr)`` of ``scratchcnn.app.cli.main(argv)`` run in-process."""
    from scratchcnn.app.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:              # main returns; a SystemExit is a finding too
            code = ("SystemExit", exc.code)
    return code, out.getvalue(), err.getvalue()


def check_cli_output(entry, kind, argv, code, out, err, match=None):
    """Assert what :func:`cli_error` promises about one run's status and output."""
    text = out + err
    if "Traceback" in text:
        _fail(entry, kind, "raw traceback", f"argv={argv!r}: {text[-1500:]}")
    if not isinstance(code, int) or code == 0:
        _fail(entry, kind, "accepted", f"argv={argv!r} exited {code!r}; stderr={err[-500:]!r}")
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note: ")]
    if not lines:
        _fail(entry, kind, "no message", f"argv={argv!r} exited {code} with nothing on stderr")
    first = lines[0]
    if not re.match(r"^scratchcnn( [a-z]+)?: error: \S", first):
        _fail(entry, kind, "unclear message", f"argv={argv!r}: first line {first!r}")
    if "internal error" in first:
        _fail(entry, kind, "raw traceback", f"argv={argv!r}: {first}")
    # a spec string's error points at the token: the spec, a line of ^, the token list
    pointer = (len(lines) in (3, 4) and set(lines[2].strip()) == {"^"} and
               (len(lines) == 3 or lines[3].startswith("tokens:")))
    if len(lines) > 1 and not pointer:
        _fail(entry, kind, "several lines", f"argv={argv!r}: {err[-1000:]!r}")
    if code != 2:
        _fail(entry, kind, "unclear message", f"argv={argv!r}: exit status {code}, expected 2")
    if match is not None and not re.search(match, err, re.I | re.S):
        _fail(entry, kind, "unclear message", f"argv={argv!r}: {first!r} does not match {match!r}")
    record(entry, kind)
    return first


def cli_error(entry, kind, argv, match=None):
    """Run ``argv`` in-process; assert a one-line ``scratchcnn COMMAND: error: ...`` and exit 2."""
    code, out, err = run_cli(argv)
    return check_cli_output(entry, kind, argv, code, out, err, match)


def web_error(entry, kind, response, statuses=None):
    """Assert a 4xx JSON answer ``{"detail": "..."}`` (one of ``statuses`` when given)."""
    status = response.status_code
    if status >= 500:
        _fail(entry, kind, "5xx", f"{status}: {response.text[:500]}")
    if not 400 <= status < 500:
        _fail(entry, kind, "accepted", f"{status}: {response.text[:300]}")
    if statuses is not None and status not in statuses:
        _fail(entry, kind, "unclear message", f"status {status}, expected one of {statuses}: {response.text[:300]}")
    try:
        body = response.json()
    except ValueError:
        _fail(entry, kind, "unclear message", f"{status} without a JSON body: {response.text[:300]!r}")
    if not (isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"].strip()):
        _fail(entry, kind, "unclear message", f"{status} body is not {{'detail': message}}: {body!r}"[:500])
    record(entry, kind)
    return body["detail"]
