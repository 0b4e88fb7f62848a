"""Who holds a TCP port: so that start-up can say which port is taken and by what, instead of
starting services that cannot bind (Linux: /proc/net/tcp{,6} and /proc/<pid>/fd)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

_LISTEN = "0A"


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on `host:port` (a bind with SO_REUSEADDR would succeed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == _LISTEN
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str:
    """A description of the process listening on `port` ("pid 123: python -m x"), or a
    generic one when it cannot be told (another user's process, no /proc)."""
    inodes = _listening_inodes(port)
    if inodes:
        wanted = {f"socket:[{inode}]" for inode in inodes}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fds = os.listdir(entry / "fd")
                if not any(os.readlink(entry / "fd" / fd) in wanted for fd in fds):
                    continue
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            return f"pid {entry.name}: {cmdline or '?'}"
    return "another process (not visible to this user)"
