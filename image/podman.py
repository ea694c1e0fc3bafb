"""Thin wrappers around the podman CLI (no Docker engine runs on this machine; podman runs the
same Dockerfile, rootful, with runc and the settings in image/containers.conf)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# A cold build takes 5-8 min here (most of it the torch wheels); a hung build must not eat CI.
BUILD_TIMEOUT_S = 40 * 60


class PodmanError(RuntimeError):
    """A podman command failed; the message carries its stderr."""


def podman(*args: str, check: bool = True, timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - fixed program, arguments built by this package
        ["podman", *args],  # noqa: S607 - podman is found on PATH like any make prerequisite
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        shown = " ".join(args[:3])
        raise PodmanError(f"podman {shown} ... failed ({result.returncode}): {result.stderr.strip()}")
    return result


def build(dockerfile: Path, context: Path, tag: str, build_args: dict[str, str], log: Path) -> int:
    """podman build, streaming its output to log; returns the exit code."""
    # Docker image format, as `docker build` makes: the OCI format has no HEALTHCHECK field.
    command = ["podman", "build", "--layers", "--format", "docker", "-f", str(dockerfile), "-t", tag]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    command.append(str(context))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        try:
            return subprocess.run(  # noqa: S603
                command, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=BUILD_TIMEOUT_S
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n(image-test: podman build stopped after {BUILD_TIMEOUT_S} s)\n")
            return 124


def image_config(tag: str) -> dict[str, Any]:
    """The OCI config of an image (User, Entrypoint, Cmd, ExposedPorts, ...) plus its Size."""
    data = json.loads(podman("image", "inspect", tag).stdout)[0]
    config = dict(data.get("Config") or {})
    config["Size"] = data.get("Size", 0)
    config["Healthcheck"] = data.get("Healthcheck")  # podman keeps it beside Config, not in it
    return config


def container_state(name: str) -> dict[str, Any]:
    data = json.loads(podman("inspect", "--type", "container", name).stdout)[0]
    state: dict[str, Any] = data["State"]
    return state


def published_port(name: str, container_port: int) -> int:
    """The host port podman picked for a '-p 127.0.0.1::PORT' mapping."""
    mapping = podman("port", name, f"{container_port}/tcp").stdout.strip().splitlines()[0]
    return int(mapping.rsplit(":", 1)[1])


def logs(name: str) -> str:
    result = podman("logs", name, check=False)
    return result.stdout + result.stderr
