"""What /proc tells of a process: its CPU time, resident memory, open files and TCP connections."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: the state column of /proc/net/tcp for an established connection
ESTABLISHED = "01"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_files(pid: int) -> list[str]:
    """What each open file descriptor of a process points to (`socket:[inode]` for a socket)."""
    fd_dir = f"/proc/{pid}/fd"
    links = []
    for fd in os.listdir(fd_dir):
        try:
            links.append(os.readlink(f"{fd_dir}/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return links


def socket_inodes(links: list[str]) -> set[str]:
    """The inodes of the sockets among open files (open_files)."""
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def established_tcp(pid: int, inodes: set[str]) -> list[tuple[int, int]]:
    """(local port, remote port) of each established TCP connection (IPv4 and IPv6) of these socket inodes."""
    ports = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[9] in inodes and f[3] == ESTABLISHED:
                ports.append((int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)))
    return ports
