"""The ``leveret`` console command: help, arguments, errors and each subcommand.

``call`` and ``cast`` run in-process with click's CliRunner against servers
started here on the same ``memory://`` broker. ``demo`` and ``serve`` also run
as real processes of the installed console script.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import leveret
from leveret.cli import cli
from leveret.cli._endpoints import load_endpoint
from leveret.cli._options import redact_url
from leveret.cli._values import parse_arguments, parse_value

SCRIPT = pathlib.Path(sys.executable).with_name("leveret")
TOPIC = "calc"
# Seconds a test waits for something that takes milliseconds when it works.
WAIT_SECONDS = 10.0


class CalculatorFault(Exception):
    """Not in any allowed module, so it reaches the caller as RemoteError."""


class Calculator:
    """The endpoint the tests call through the command line."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.remembered: dict[str, Any] = {}
        self.remembered_event = threading.Event()

    def add(self, a: int, b: int) -> int:
        return a + b

    def echo(self, value: Any) -> Any:
        return value

    def whoami(self) -> str:
        return self.name

    def countdown(self, start: int) -> Iterator[int]:
        yield from range(start, 0, -1)

    def remember(self, key: str, value: Any) -> None:
        self.remembered[key] = value
        self.remembered_event.set()

    def reject_size(self, size: int) -> None:
        raise ValueError(f"bad size {size}\nsecond line")

    def fault(self) -> None:
        raise CalculatorFault("calculator is on fire")


class Fleet:
    """Servers ``calc-1`` and ``calc-2`` of topic ``calc`` on one memory URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.transport = leveret.get_transport(url)
        self.endpoints = {name: Calculator(name) for name in ("calc-1", "calc-2")}
        self.servers = [
            leveret.RPCServer(
                self.transport, leveret.Target(TOPIC, server=name), [endpoint]
            )
            for name, endpoint in self.endpoints.items()
        ]
        for server in self.servers:
            server.start()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.transport.close()


@pytest.fixture
def memory_url() -> str:
    return f"memory://cli-{uuid.uuid4().hex}"


@pytest.fixture
def fleet(memory_url: str) -> Iterator[Fleet]:
    fleet = Fleet(memory_url)
    yield fleet
    fleet.close()


@pytest.fixture
def runner() -> CliRunner:
    # LEVERET_URL of the developer's shell must not point a test at a broker.
    return CliRunner(env={"LEVERET_URL": None})


@pytest.fixture
def module_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A directory on sys.path for endpoint modules; sys.path is restored after."""
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    return tmp_path


def write_module(directory: pathlib.Path, source: str) -> str:
    """Write *source* as a uniquely named module in *directory*; return its name."""
    name = f"cli_endpoint_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args))


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LEVERET_URL", None)
    return env


def assert_one_line_error(result: Result, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- help texts ---------------------------------------------------------------


def test_help_lists_subcommands(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    for name in ("demo", "serve", "call", "cast"):
        assert f"  {name} " in result.stdout, name


def test_help_gives_units(runner: CliRunner) -> None:
    call_help = invoke(runner, "call", "--help").stdout
    serve_help = invoke(runner, "serve", "--help").stdout
    assert "Seconds to wait for the reply" in call_help
    assert "Seconds that requests in progress get to" in serve_help


def test_help_names_url_envvar(runner: CliRunner) -> None:
    for command in ("demo", "serve", "call", "cast"):
        result = invoke(runner, command, "--help")
        assert "LEVERET_URL" in result.stdout, command


def test_help_notes_memory_scope(runner: CliRunner) -> None:
    result = invoke(runner, "call", "--help")
    assert "only servers in this same process" in " ".join(result.stdout.split())


def test_version_option(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert "0.1.0" in result.stdout


# --- KEY=VALUE arguments ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('"1"', "1"),
        ("[1, 2]", [1, 2]),
        ('{"a": {"b": 1}}', {"a": {"b": 1}}),
        ("web-1", "web-1"),
        ("", ""),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("{oops", "{oops"),
    ],
)
def test_parse_value(text: str, expected: Any) -> None:
    assert parse_value(text) == expected


def test_parse_value_keeps_type() -> None:
    assert type(parse_value("1")) is int
    assert type(parse_value('"1"')) is str


def test_parse_arguments_builds_kwargs() -> None:
    arguments = parse_arguments(["a=1", "name=web-1", "query=x=y"])
    assert arguments == {"a": 1, "name": "web-1", "query": "x=y"}


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("size", "missing '='"),
        ("1a=2", "invalid argument name '1a'"),
        ("=2", "invalid argument name ''"),
        ("a-b=2", "invalid argument name 'a-b'"),
    ],
)
def test_parse_arguments_rejects(assignment: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        parse_arguments([assignment])


def test_parse_arguments_rejects_duplicate() -> None:
    with pytest.raises(click.BadParameter, match="more than once"):
        parse_arguments(["a=1", "a=2"])


# --- call ---------------------------------------------------------------------


def test_call_prints_json(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "add", "a=2", "b=3")
    assert result.exit_code == 0, result.output
    assert result.stdout == "5\n"


def test_call_sends_text_value(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "echo", "value=web-1")
    assert result.stdout == '"web-1"\n'


def test_call_sends_json_value(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(
        runner, "call", "--url", fleet.url, TOPIC, "echo", 'value={"ids": [1, 2]}'
    )
    assert result.stdout == '{"ids": [1, 2]}\n'


def test_call_prints_unicode(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "echo", "value=größe")
    assert result.stdout == '"größe"\n'


def test_call_targets_server(runner: CliRunner, fleet: Fleet) -> None:
    # Four calls, so that round-robin over the two servers cannot pass by luck.
    for _ in range(4):
        result = invoke(
            runner, "call", "--url", fleet.url, "--server", "calc-2", TOPIC, "whoami"
        )
        assert result.stdout == '"calc-2"\n'


def test_call_url_from_env(fleet: Fleet) -> None:
    runner = CliRunner(env={"LEVERET_URL": fleet.url})
    result = runner.invoke(cli, ["call", TOPIC, "add", "a=1", "b=1"])
    assert result.stdout == "2\n"


def test_call_streams_items(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(
        runner, "call", "--url", fleet.url, "--stream", TOPIC, "countdown", "start=3"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "3\n2\n1\n"


def test_call_generator_returns_last(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "countdown", "start=3")
    assert result.stdout == "1\n"


def test_call_remote_builtin_error(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "reject_size", "size=7")
    assert_one_line_error(result)
    assert "call of calc.reject_size failed: ValueError: bad size 7" in result.stderr


def test_call_remote_error(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "fault")
    assert_one_line_error(result)
    expected = "remote error: CalculatorFault: calculator is on fire"
    assert expected in result.stderr


def test_call_no_such_method(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "subtract")
    assert_one_line_error(result)
    assert "does not support RPC method subtract" in result.stderr


def test_call_no_server(runner: CliRunner, memory_url: str) -> None:
    result = invoke(runner, "call", "--url", memory_url, TOPIC, "add")
    assert_one_line_error(result)
    assert "no server listens on openstack/calc" in result.stderr


def test_call_interrupted_exits_130(
    runner: CliRunner, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(leveret.RPCClient, "call", interrupted)
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "add", "a=1", "b=2")
    assert result.exit_code == 130
    assert result.stderr == "Aborted!\n"


def test_call_missing_equals(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "add", "a")
    assert result.exit_code == 2
    assert "missing '=' in 'a'" in result.stderr


def test_call_invalid_key(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, TOPIC, "add", "a.b=1")
    assert result.exit_code == 2
    assert "invalid argument name 'a.b'" in result.stderr


@pytest.mark.parametrize("command", ["call", "cast", "notify"])
@pytest.mark.parametrize("timeout", ["nan", "inf", "1e400"])
def test_non_finite_timeout_is_usage_error(
    runner: CliRunner, memory_url: str, command: str, timeout: str
) -> None:
    words = [TOPIC, "add"] if command != "notify" else ["compute.start"]
    result = invoke(runner, command, "--url", memory_url, "--timeout", timeout, *words)
    assert result.exit_code == 2
    assert "not a finite number of seconds" in result.stderr


def test_call_invalid_url(runner: CliRunner) -> None:
    result = invoke(runner, "call", "--url", "localhost:5672", TOPIC, "add")
    assert_one_line_error(result)
    assert "invalid transport URL 'localhost:5672'" in result.stderr


def test_call_invalid_version(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, "--version", "2", TOPIC, "add")
    assert_one_line_error(result)
    assert "invalid version '2'" in result.stderr


def test_call_unsupported_version(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(
        runner, "call", "--url", fleet.url, "--version", "2.0", TOPIC, "whoami"
    )
    assert_one_line_error(result)
    assert "does not support RPC version 2.0" in result.stderr


def test_call_rejects_zero_timeout(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(runner, "call", "--url", fleet.url, "--timeout", "0", TOPIC, "add")
    assert result.exit_code == 2
    assert "--timeout" in result.stderr


# --- cast ---------------------------------------------------------------------


def test_cast_reaches_server(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(
        runner,
        "cast",
        "--url",
        fleet.url,
        "--server",
        "calc-1",
        TOPIC,
        "remember",
        "key=colour",
        "value=green",
    )
    endpoint = fleet.endpoints["calc-1"]
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert endpoint.remembered_event.wait(WAIT_SECONDS)
    assert endpoint.remembered == {"colour": "green"}


def test_cast_fanout_reaches_all(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(
        runner,
        "cast",
        "--url",
        fleet.url,
        "--fanout",
        TOPIC,
        "remember",
        "key=k",
        "value=1",
    )
    assert result.exit_code == 0, result.output
    for name, endpoint in fleet.endpoints.items():
        assert endpoint.remembered_event.wait(WAIT_SECONDS), name
        assert endpoint.remembered == {"k": 1}, name


def test_cast_fanout_with_server(runner: CliRunner, fleet: Fleet) -> None:
    result = invoke(
        runner, "cast", "--url", fleet.url, "--fanout", "--server", "calc-1", TOPIC, "m"
    )
    assert result.exit_code == 2
    assert "leave out --server" in result.stderr


def test_cast_no_server(runner: CliRunner, memory_url: str) -> None:
    result = invoke(runner, "cast", "--url", memory_url, TOPIC, "remember")
    assert_one_line_error(result)
    assert "no server listens on openstack/calc" in result.stderr


# --- demo ---------------------------------------------------------------------

DEMO_LINES = [
    "call   demo-compute.add(a=2, b=3) -> 5  [worker-",
    "cast   demo-compute.remember(key='colour', value='green')  [taken by worker-",
    "call   demo-compute.recall(key='colour') -> 'green'  [worker-",
    "fanout demo-compute.reload(config_version=2)  "
    "[reached worker-1, worker-2, worker-3]",
    "call   demo-compute.status() on server worker-2 -> "
    "{'worker': 'worker-2', 'config_version': 2}  [worker-2, ",
    "stream demo-compute.countdown(start=3) -> 3 2 1  [worker-",
    "call   demo-compute.reserve(cores=64) -> raised QuotaExceeded: "
    "64 cores requested, 16 free  [allowed module: re-raised as itself]",
    "call   demo-compute.parse(text='{oops') -> raised RemoteError: JSONDecodeError: ",
    "stopped 3 workers and closed the transports",
]


def test_demo_prints_each_step(runner: CliRunner) -> None:
    result = invoke(runner, "demo", "--url", f"memory://demo-{uuid.uuid4().hex}")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for expected in DEMO_LINES:
        assert any(line.startswith(expected) for line in lines), expected


def test_demo_line_count(runner: CliRunner) -> None:
    result = invoke(runner, "demo")
    assert len(result.stdout.splitlines()) == len(DEMO_LINES) + 1


def test_demo_console_script() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} missing: install the package with pip -e"
    started = time.monotonic()
    completed = subprocess.run(
        [str(SCRIPT), "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
        check=False,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert "[reached worker-1, worker-2, worker-3]" in completed.stdout
    assert completed.stderr == ""
    assert elapsed < 10, f"demo took {elapsed:.1f} s"


# --- serve: building blocks ---------------------------------------------------

ENDPOINTS_SOURCE = """
    class Echo:
        def echo(self, value):
            return value

    class Needs:
        def __init__(self, name):
            self.name = name

    class Outer:
        class Inner:
            pass

    def make_echo():
        return Echo()

    def make_named(name):
        return Needs(name)

    instance = Echo()
"""


def test_load_endpoint_class(module_dir: pathlib.Path) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    endpoint = load_endpoint(f"{name}:Echo")
    assert type(endpoint).__name__ == "Echo"


def test_load_endpoint_factory(module_dir: pathlib.Path) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    endpoint = load_endpoint(f"{name}:make_echo")
    assert type(endpoint).__name__ == "Echo"


def test_load_endpoint_instance(module_dir: pathlib.Path) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    endpoint = load_endpoint(f"{name}:instance")
    assert endpoint is sys.modules[name].instance


def test_load_endpoint_dotted(module_dir: pathlib.Path) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    endpoint = load_endpoint(f"{name}:Outer.Inner")
    assert type(endpoint).__name__ == "Inner"


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("Missing", "attribute 'Missing' not found"),
        ("Outer.Missing", "attribute 'Outer.Missing' not found"),
        ("Needs", "needs arguments"),
        ("make_named", "needs arguments"),
    ],
)
def test_load_endpoint_rejects(
    module_dir: pathlib.Path, attribute: str, message: str
) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    with pytest.raises(click.BadParameter, match=message):
        load_endpoint(f"{name}:{attribute}")


@pytest.mark.parametrize("spec", ["json", "json:", ":Echo"])
def test_load_endpoint_malformed(spec: str) -> None:
    with pytest.raises(click.BadParameter, match="expected MODULE:ATTR"):
        load_endpoint(spec)


def test_load_endpoint_missing_module() -> None:
    with pytest.raises(click.BadParameter, match="module 'no_such_module_x' not"):
        load_endpoint("no_such_module_x:Echo")


def test_load_endpoint_missing_parent() -> None:
    with pytest.raises(click.BadParameter, match="module 'no_such_x.sub' not"):
        load_endpoint("no_such_x.sub:Echo")


def test_load_endpoint_broken_import(module_dir: pathlib.Path) -> None:
    # A missing dependency of the module is a bug there, not a usage error.
    name = write_module(module_dir, "import no_such_dependency_x\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_x"):
        load_endpoint(f"{name}:Echo")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://user:secret@host:5672/vhost", "amqp://user:***@host:5672/vhost"),
        ("amqps://u:p%2Fq@h1,v:p2@h2:5671/", "amqps://u:***@h1,v:***@h2:5671/"),
        ("amqp://u:p@ss@host/", "amqp://u:***@host/"),
        ("amqp://guest@host/", "amqp://guest@host/"),
        ("amqp://host/", "amqp://host/"),
        ("memory://demo", "memory://demo"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# --- serve: the command -------------------------------------------------------


def test_serve_missing_module(runner: CliRunner) -> None:
    result = invoke(runner, "serve", "no_such_module_x:Echo", "--topic", TOPIC)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "module 'no_such_module_x' not found" in result.stderr


def test_serve_needs_topic(runner: CliRunner) -> None:
    result = invoke(runner, "serve", "json:JSONDecoder")
    assert result.exit_code == 2
    assert "Missing option '--topic'" in result.stderr


def test_serve_invalid_url(runner: CliRunner, module_dir: pathlib.Path) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    result = invoke(runner, "serve", f"{name}:Echo", "--topic", TOPIC, "--url", "x")
    assert_one_line_error(result)
    assert "invalid transport URL 'x'" in result.stderr


def _call_then_signal(url: str, outcome: dict[str, Any]) -> None:
    """Call the served endpoint (retrying until it is up), then send SIGTERM."""
    transport = leveret.get_transport(url)
    client = leveret.RPCClient(transport, leveret.Target(TOPIC, server="calc-9"))
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while time.monotonic() < deadline:
            try:
                outcome["result"] = client.call("echo", value="hello")
                break
            except leveret.NoServerError:
                time.sleep(0.01)
    finally:
        transport.close()
    # Without serve's handler, SIGTERM would end the whole test run.
    handler = signal.getsignal(signal.SIGTERM)
    outcome["handler_installed"] = handler not in (signal.SIG_DFL, None)
    if outcome["handler_installed"]:
        os.kill(os.getpid(), signal.SIGTERM)


def test_serve_until_sigterm(
    runner: CliRunner, module_dir: pathlib.Path, memory_url: str
) -> None:
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    outcome: dict[str, Any] = {}
    caller = threading.Thread(target=_call_then_signal, args=(memory_url, outcome))
    caller.start()
    result = invoke(
        runner,
        "serve",
        f"{name}:Echo",
        "--topic",
        TOPIC,
        "--server",
        "calc-9",
        "--url",
        memory_url,
        "--app-dir",
        str(module_dir),
    )
    caller.join(WAIT_SECONDS)
    assert outcome.get("result") == "hello"
    assert outcome.get("handler_installed") is True
    assert result.exit_code == 0, result.output
    assert f"serving calc as server calc-9 on {memory_url}\n" in result.stderr
    assert "serve.stopping signal=SIGTERM" in result.stderr


def test_serve_restores_signal_handlers(
    runner: CliRunner, module_dir: pathlib.Path, memory_url: str
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    name = write_module(module_dir, ENDPOINTS_SOURCE)
    outcome: dict[str, Any] = {}
    caller = threading.Thread(target=_call_then_signal, args=(memory_url, outcome))
    caller.start()
    invoke(
        runner,
        "serve",
        f"{name}:Echo",
        "--topic",
        TOPIC,
        "--server",
        "calc-9",
        "--url",
        memory_url,
    )
    caller.join(WAIT_SECONDS)
    assert signal.getsignal(signal.SIGTERM) == before


class LineReader:
    """Collect a process's stderr lines in a thread, so reads can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(
            target=self._read, args=(process.stderr,), daemon=True
        )
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, text: str) -> bool:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return True
        return False

    def join(self) -> None:
        """Wait for the end of the stream; call once the process has exited."""
        self._thread.join(WAIT_SECONDS)


@contextlib.contextmanager
def serving(
    directory: pathlib.Path, spec: str, *options: str
) -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    """Run ``leveret serve`` as a process; kill it and close its pipe at the end."""
    command = [str(SCRIPT), "serve", spec, "--topic", TOPIC]
    command += ["--app-dir", str(directory), *options]
    with subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    ) as process:
        reader = LineReader(process)
        try:
            yield process, reader
        finally:
            process.kill()
            process.wait()
            reader.join()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_process_stops(tmp_path: pathlib.Path, signum: signal.Signals) -> None:
    name = write_module(tmp_path, ENDPOINTS_SOURCE)
    with serving(tmp_path, f"{name}:Echo", "--server", "s1") as (process, reader):
        assert reader.wait_for("serving calc as server s1 on memory://"), reader.seen
        process.send_signal(signum)
        assert process.wait(WAIT_SECONDS) == 0
        assert reader.wait_for("server.stopped topic=calc server=s1"), reader.seen


BLOCKING_SOURCE = """
    import sys
    import threading
    import time

    import leveret

    URL = "memory://blocking"


    def cast_block():
        transport = leveret.get_transport(URL)
        client = leveret.RPCClient(transport, leveret.Target("calc"))
        while True:
            try:
                client.cast("block")
                return
            except leveret.NoServerError:
                time.sleep(0.01)


    class Blocking:
        def __init__(self):
            threading.Thread(target=cast_block, daemon=True).start()

        def block(self):
            sys.stderr.write("block started\\n")
            sys.stderr.flush()
            time.sleep(60)
"""


def test_serve_second_signal_exits(tmp_path: pathlib.Path) -> None:
    name = write_module(tmp_path, BLOCKING_SOURCE)
    spec = f"{name}:Blocking"
    with serving(tmp_path, spec, "--url", "memory://blocking") as (process, reader):
        assert reader.wait_for("block started"), reader.seen
        process.send_signal(signal.SIGTERM)
        assert reader.wait_for("serve.stopping signal=SIGTERM"), reader.seen
        # The grace period (30 s) keeps the process waiting for "block".
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT_SECONDS) == 128 + signal.SIGTERM
        assert reader.wait_for("second SIGTERM: exiting without waiting"), reader.seen


def test_cast_timeout_option_in_help() -> None:
    result = CliRunner().invoke(cli, ["cast", "--help"])
    assert result.exit_code == 0
    assert "--timeout" in result.output


def test_memory_no_server_hints_url() -> None:
    result = CliRunner().invoke(
        cli, ["call", "nobody-serves-this", "ping", "--url", "memory://cli-hint"]
    )
    assert result.exit_code == 1
    assert "LEVERET_URL" in result.output


def test_bad_ipv6_url_one_line() -> None:
    result = CliRunner().invoke(
        cli, ["call", "t", "m", "--url", "amqp://guest:hidden@[::1/"]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "hidden" not in result.output
