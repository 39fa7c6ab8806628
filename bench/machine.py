"""Describe the machine, the broker and the library versions of a run."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "leveret",
    "oslo.messaging",
    "aio-pika",
    "aiormq",
    "pika",
    "nameko",
    "kombu",
    "eventlet",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def broker_version(url: str | None) -> str | None:
    """Return the version the broker announces when a client connects."""
    if not url or not url.startswith(("amqp://", "amqps://")):
        return None
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        properties = connection._impl.server_properties
        version = properties.get("version", b"")
        product = properties.get("product", b"")
        if isinstance(version, bytes):
            version = version.decode()
        if isinstance(product, bytes):
            product = product.decode()
        return f"{product} {version}".strip()
    finally:
        connection.close()


def git_revision(root: Path) -> str | None:
    try:
        revision = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return revision or None


def load_average() -> list[float] | None:
    """Return the 1, 5 and 15 minute load averages: other work on the machine."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def describe(url: str | None, root: Path) -> dict[str, Any]:
    memory_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1) if memory_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "broker": broker_version(url),
        "load_average": load_average(),
        "packages": package_versions(),
        "leveret_revision": git_revision(root),
    }
