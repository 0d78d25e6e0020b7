#!/usr/bin/env python3
"""Starting the server and waiting until it is ready: the one helper of every script that needs a
running server (scripts/ci-smoke.sh, scripts/schema-fuzz.sh, scripts/soak.py, bench/run.py), and
the example record they send.

As a module:
    proc, seconds = serverctl.start([binary, "serve"], port, env={...}, log=file)
    seconds = serverctl.wait_ready(port, proc=proc)
From a shell script that started the server itself:
    python3 scripts/serverctl.py wait --port 8000 --pid "$pid" [--log server.log] [--timeout 60]
It polls GET <path> (default /readyz) until it answers 200, and fails at once, with the end of
the log, when the process exits first.
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "heart-disease"


def example_record():
    """The README's record: one patient of the built-in model, by feature name."""
    return json.loads((MODEL_DIR / "example.json").read_text())


def example_row():
    """The same record as a row, in the model's feature order."""
    record = example_record()
    features = json.loads((MODEL_DIR / "schema.json").read_text())["features"]
    return [record[f["name"]] for f in features]


def free_port():
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(port, path, host="127.0.0.1", timeout=0.5):
    """The status code of GET path, or 0 when nothing answers. A raw socket: cheap enough to poll
    every few milliseconds, so a start-to-ready time is measured to that resolution."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return int(s.recv(64).split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class NotReady(RuntimeError):
    pass


def _alive(proc, pid):
    if proc is not None:
        return proc.poll() is None
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the calling shell still answers kill(0); its state says it has exited.
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _tail(log):
    if log is None:
        return ""
    try:
        if hasattr(log, "seek"):
            log.flush()
            log.seek(0)
            text = log.read()
        else:
            text = pathlib.Path(log).read_bytes()
        return text.decode(errors="replace")[-3000:] if isinstance(text, bytes) else text[-3000:]
    except OSError:
        return ""


def wait_ready(port, proc=None, pid=None, log=None, path="/readyz", timeout=60.0, started=None, poll=0.002):
    """Seconds from `started` (default: now) until `path` answers 200."""
    started = time.monotonic() if started is None else started
    deadline = started + timeout
    while time.monotonic() < deadline:
        if status(port, path) == 200:
            return time.monotonic() - started
        if not _alive(proc, pid):
            raise NotReady(f"the server exited before {path} answered 200\n{_tail(log)}")
        time.sleep(poll)
    raise NotReady(f"{path} did not answer 200 within {timeout:.0f} s\n{_tail(log)}")


def start(command, port, env=None, log=None, path="/readyz", timeout=120.0, cpu=None, cwd=None):
    """Starts `command` (pinned to `cpu` with taskset when given) and waits until it is ready.
    Returns the process and the seconds from start to ready. `log` takes stdout and stderr; a
    file, never a pipe, so a server that logs a lot never blocks."""
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    started = time.monotonic()
    proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, cwd=cwd,
                            stdout=log if log is not None else subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL)
    try:
        return proc, wait_ready(port, proc=proc, log=log, path=path, timeout=timeout, started=started)
    except NotReady:
        proc.kill()
        proc.wait()
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until a running server is ready")
    wait.add_argument("--port", type=int, required=True)
    wait.add_argument("--pid", type=int, help="fail at once if this process exits")
    wait.add_argument("--log", help="log file to show on failure")
    wait.add_argument("--path", default="/readyz")
    wait.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    try:
        seconds = wait_ready(args.port, pid=args.pid, log=args.log, path=args.path, timeout=args.timeout, poll=0.05)
    except NotReady as e:
        print(f"serverctl: {e}", file=sys.stderr)
        return 1
    print(f"ready after {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
