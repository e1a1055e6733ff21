"""The make of tests/pipelines/workers, steered by environment variables:

WORKERS_TEST_SLEEP   seconds each call sleeps
WORKERS_TEST_LOG     a file each finished call appends "item_id pid" to
WORKERS_TEST_BEGUN   a file each call appends "item_id pid" to as it begins
WORKERS_TEST_CRASH   "item:how,..." with how one of exit (os._exit(3)), kill (SIGKILL itself),
                     segv (reads address 0)
"""

from __future__ import annotations

import ctypes
import os
import signal
import time


def _crash(item_id: int) -> None:
    for entry in filter(None, os.environ.get("WORKERS_TEST_CRASH", "").split(",")):
        item, how = entry.split(":")
        if int(item) != item_id:
            continue
        if how == "exit":
            os._exit(3)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segv":
            ctypes.string_at(0)


def _log(variable: str, item_id: int) -> None:
    log = os.environ.get(variable)
    if log:
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, f"{item_id} {os.getpid()}\n".encode())
        finally:
            os.close(descriptor)


def square(key: dict, size: int) -> dict:
    item_id = key["item_id"]
    _log("WORKERS_TEST_BEGUN", item_id)
    _crash(item_id)
    time.sleep(float(os.environ.get("WORKERS_TEST_SLEEP", "0")))
    _log("WORKERS_TEST_LOG", item_id)
    return {
        "value": item_id * item_id,
        "Piece": [{"piece": i, "part_value": item_id * 1000 + i} for i in range(size)],
    }
