"""Real server processes for tests: a free local port, start a command and wait for its health URL, stop it."""

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], health_url: str, seconds: float) -> subprocess.Popen:
    """Starts `command` and returns once `health_url` answers 200; raises if it exits or takes longer."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {server.returncode}")
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"{command[0]} did not answer within {seconds:g} s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)
