"""The in-sandbox half of a python session: an IPython kernel, driven with the Jupyter protocol.

Run inside the sandbox by the image's Python (`python3 -c <this file>`), as a command of the
sandbox agent whose input stays open. It starts an ipykernel with jupyter_client, then answers
one JSON line per request on stdin with one line on stdout, each prefixed with PREFIX (nothing
else is written there: the kernel's own stdout and stderr go to a log in /tmp, and ipykernel
forwards what cells print, at the file-descriptor level too, over the protocol):

    {"op": "execute", "id": n, "code": ..., "cap": bytes}
        -> {"id": n, "stdout", "stderr", "value", "outputs": [[mime, data], ...], "error", "duration"}
    {"op": "interrupt"}              the running cell gets KeyboardInterrupt (no answer of its own)
    {"op": "restart", "id": n}       -> {"id": n, "restarted": true}   (all state gone)
    end of input                     the kernel is shut down, then this exits

Not imported by the runtime: `kernel_session.py` reads this file and sends its text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

PREFIX = "\x1eTAPK "
TEXT = "text/plain"


def main() -> None:
    from jupyter_client.manager import start_new_kernel  # type: ignore[import-not-found]

    log = open("/tmp/.theappapp-kernel.log", "ab")  # noqa: SIM115 (the kernel's lifetime)
    km, kc = start_new_kernel(kernel_name="python3", stdout=log, stderr=subprocess.STDOUT)
    lock = threading.Lock()
    busy = threading.Lock()  # one cell at a time, as a notebook runs them

    def say(message: dict[str, Any]) -> None:
        line = PREFIX + json.dumps(message) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def execute(rid: int, code: str, cap: int) -> None:
        with busy:
            t0 = time.monotonic()
            out: list[str] = []
            err: list[str] = []
            sizes = {"stdout": 0, "stderr": 0}
            outputs: list[list[str]] = []
            value = error = None
            truncated = False
            # Not into IPython's history (In, Out, _): that write is a quarter of a trivial cell's time
            # (bench_sessions: 1+1 p50 10.7 -> 8.0 ms); state between cells is unaffected.
            msg_id = kc.execute(code, store_history=False)
            while True:
                msg = kc.get_iopub_msg(timeout=None)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    name = "stderr" if content.get("name") == "stderr" else "stdout"
                    text = content.get("text", "")
                    room = cap - sizes[name]
                    if room > 0:
                        (err if name == "stderr" else out).append(text[:room])
                    truncated = truncated or len(text) > room
                    sizes[name] += len(text)
                elif kind in ("execute_result", "display_data"):
                    data = content.get("data", {})
                    if kind == "execute_result":
                        value = data.get(TEXT)
                    for mime, payload in data.items():
                        if kind == "execute_result" and mime == TEXT:
                            continue
                        text = payload if isinstance(payload, str) else json.dumps(payload)
                        if sum(len(o[1]) for o in outputs) + len(text) <= 8 * cap:
                            outputs.append([mime, text])
                        else:
                            truncated = True
                elif kind == "error":
                    error = {"name": content.get("ename", ""), "message": content.get("evalue", ""),
                             "traceback": content.get("traceback", [])}
                elif kind == "status" and content.get("execution_state") == "idle":
                    break
            say({"id": rid, "stdout": "".join(out), "stderr": "".join(err), "value": value, "outputs": outputs,
                 "error": error, "duration": time.monotonic() - t0, "truncated": truncated})

    def restart(rid: object) -> None:
        with busy:
            km.restart_kernel(now=True)
            kc.wait_for_ready(timeout=60)
        say({"id": rid, "restarted": True})

    say({"ready": True})
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        op = request.get("op")
        if op == "execute":
            threading.Thread(target=execute, daemon=True,
                             args=(request["id"], str(request.get("code", "")), int(request.get("cap", 1 << 20)))
                             ).start()
        elif op == "interrupt":
            km.interrupt_kernel()
        elif op == "restart":  # in a thread too: this loop must go on reading interrupts meanwhile
            threading.Thread(target=restart, daemon=True, args=(request.get("id"),)).start()
    km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
