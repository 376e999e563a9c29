"""Real server processes for tests: a free local port, start a command and wait for its health URL, stop it."""

import socket
import subprocess

import httpx

from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    command: list[str], health_url: str, seconds: float, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Starts `command` (with `env`, default os.environ) and returns once `health_url` answers 200; fails if
    it exits or takes longer."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def answers() -> bool:
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {server.returncode}")
        return False

    try:
        wait_until(answers, seconds, f"{command[0]} to answer at {health_url}", every_s=0.1)
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)
