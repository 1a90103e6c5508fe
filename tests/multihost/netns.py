"""Hosts made of Linux network namespaces, for the multi-host test.

Each host is a namespace joined to the root namespace by a veth pair: its end has
10.231.<index>.2/24, the root namespace's end 10.231.<index>.1, its default route. Redis,
PostgreSQL, the S3 stand-in and the emulator listen on every interface of the root
namespace, so every host reaches them at one address (any of the root namespace's own),
as machines reach shared services by one name: what hosts share is exactly those.

Names carry this process's pid (``vq<pid>-<name>``), so a run never collides with the
leftovers of a crashed one; :func:`remove_stale` deletes those whose process is gone.
Interface names stay within Linux's 15 characters (``v<pid><index>h`` / ``...n``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SUBNET = "10.231"
# Namespaces this module makes: vq<pid>-<name> (the pid of the test process).
_NAMESPACE = re.compile(r"^vq(?P<pid>\d+)-[a-z0-9]+$")
# Linux refuses interface names longer than this (IFNAMSIZ - 1).
MAX_INTERFACE_NAME = 15


@dataclass(frozen=True)
class Host:
    """A namespace standing for a machine: ``ip`` is its address, ``gateway`` the root
    namespace's address on its link (its default route)."""

    name: str
    ip: str
    gateway: str
    namespace: str
    host_interface: str


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def netns_available() -> bool:
    """True when this process may make network namespaces (root, `ip` and `unshare` present,
    and `ip netns add` works here: a container without CAP_SYS_ADMIN refuses it)."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        return False
    probe = f"vq{os.getpid()}-probe"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return False
    _ip("netns", "del", probe, check=False)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete the namespaces (and so their veth pairs) left by runs whose process is gone;
    returns their names."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    stale = []
    for line in listed:
        name = line.split(" ", 1)[0]
        found = _NAMESPACE.match(name)
        if found and not _alive(int(found["pid"])):
            _ip("netns", "del", name, check=False)
            stale.append(name)
    return stale


def free_indexes(count: int) -> list[int]:
    """``count`` subnet indexes (10.231.<index>.0/24) no interface of this machine uses."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", _ip("-4", "addr").stdout))
    free = [index for index in range(1, 255) if str(index) not in used]
    if len(free) < count:
        raise RuntimeError(f"fewer than {count} free {SUBNET}.N.0/24 subnets: run ip netns list")
    return free[:count]


def make_host(name: str, index: int) -> Host:
    """A namespace ``vq<pid>-<name>`` with lo up and a veth link to the root namespace on
    10.231.<index>.0/24 (.1 root side, .2 host side). Removed with :func:`remove_host`."""
    pid = os.getpid()
    namespace = f"vq{pid}-{name}"
    outside, inside = f"v{pid}x{index}h", f"v{pid}x{index}n"
    if len(outside) > MAX_INTERFACE_NAME:
        raise ValueError(f"interface name {outside!r} is longer than {MAX_INTERFACE_NAME}")
    gateway, ip = f"{SUBNET}.{index}.1", f"{SUBNET}.{index}.2"
    host = Host(name, ip, gateway, namespace, outside)
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("addr", "add", f"{gateway}/24", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{ip}/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        # Processes of the host bind 127.0.0.1 too (the worker's metrics port).
        _ip("-n", namespace, "link", "set", "lo", "up")
        # Every address of the root namespace is reached through this link.
        _ip("-n", namespace, "route", "add", "default", "via", gateway)
    except Exception:
        remove_host(host)
        raise
    return host


def command_in(host: Host, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``host``: its network namespace and a UTS namespace of its own
    whose hostname is the host's name (Celery's node name and the heartbeat name it, as on
    a real machine). The same pid runs ``argv`` in the end (exec), so signalling the
    returned process's group reaches it."""
    hostname = f"vq-{host.name}"
    return [
        "ip", "netns", "exec", host.namespace,
        "unshare", "--uts", "--",
        "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv,
    ]  # fmt: skip


def run_in(
    host: Host, argv: Sequence[str], env: Mapping[str, str], *, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``host`` with exactly ``env``; output to ``log`` (else discarded)."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("ab")) if log else subprocess.DEVNULL
        return subprocess.Popen(
            command_in(host, argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def remove_host(host: Host) -> None:
    """Delete the namespace (its end of the veth goes with it, and so the pair) and the
    root side if it is still there. Never raises: it runs in finalizers."""
    _ip("netns", "del", host.namespace, check=False)
    _ip("link", "del", host.host_interface, check=False)
