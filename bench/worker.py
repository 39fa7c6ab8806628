"""One benchmark process: the client or the server of one system.

Usage: python -m bench.worker SYSTEM ROLE URL

ROLE is ``client`` or ``server``. The process reads one JSON command per
line on stdin and writes one JSON response per line to the stdout it was
started with. Anything the libraries print goes to stderr. The first response
reports readiness (and, for a server, the shapes it cannot serve).

Commands: ``{"op": "run", "shape": ..., "params": {...}}`` (client; the
response adds the CPU seconds the process used during the run),
``{"op": "reset"}`` and ``{"op": "collect", ...}`` (server, see
:meth:`bench.systems.common.Arrivals.collect`), ``{"op": "cpu"}`` (the
process's CPU seconds so far) and ``{"op": "stop"}``.
"""

import sys

if __name__ == "__main__" and sys.argv[1:2] == ["nameko"]:
    # nameko runs on eventlet, which must patch the standard library before
    # anything else imports it.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()

import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any, TextIO  # noqa: E402

from .systems import IN_PROCESS, MODULES  # noqa: E402
from .systems.common import Arrivals, UnsupportedShape  # noqa: E402


def _protocol_stream() -> TextIO:
    """Keep the original stdout for responses and send fd 1 to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _line_reader(system: str) -> Callable[[], str]:
    if system == "nameko":
        from eventlet import tpool

        # A plain blocking read would stop every green thread, the service's
        # included; tpool runs it in a real thread.
        return lambda: tpool.execute(sys.stdin.readline)
    return sys.stdin.readline


def _handle(
    command: dict[str, Any], role_object: Any, arrivals: Arrivals
) -> dict[str, Any] | None:
    op = command["op"]
    if op == "run":
        began = time.process_time()
        result: dict[str, Any] = role_object.run(command["shape"], command["params"])
        result["cpu_seconds"] = time.process_time() - began
        return result
    if op == "cpu":
        # CPU seconds of every thread of this process so far.
        return {"cpu_seconds": time.process_time()}
    if op == "reset":
        arrivals.reset()
        return None
    if op == "collect":
        return arrivals.collect(**command["args"])
    raise ValueError(f"unknown command {op!r}")


def main(argv: list[str]) -> int:
    system, role, url = argv
    responses = _protocol_stream()
    warnings.simplefilter("ignore")  # peers' deprecation warnings at run time
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    def respond(message: dict[str, Any]) -> None:
        responses.write(json.dumps(message) + "\n")

    arrivals = Arrivals()
    try:
        module = importlib.import_module(f".systems.{MODULES[system]}", "bench")
        if role == "server" and system not in IN_PROCESS:
            role_object = module.Server(url, arrivals)
            role_object.start()
            ready = {"ok": True, "unavailable": dict(role_object.unavailable)}
        else:
            role_object = module.Client(url)
            ready = {"ok": True}
    except Exception as exc:
        traceback.print_exc()
        respond({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    respond(ready)

    read_line = _line_reader(system)
    while line := read_line():
        command = json.loads(line)
        if command["op"] == "stop":
            break
        try:
            respond({"ok": True, "result": _handle(command, role_object, arrivals)})
        except UnsupportedShape as exc:
            respond({"ok": False, "unsupported": True, "error": str(exc)})
        except Exception as exc:
            traceback.print_exc()
            respond({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    try:
        (role_object.stop if role == "server" else role_object.close)()
    except Exception:
        traceback.print_exc()
    respond({"ok": True, "stopped": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
