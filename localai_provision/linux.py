"""What a Linux host adds to the server's packages: one rule, read by the plan (the set a
venv must hold) and by the lock (the requirements it resolves).

mlx-omni-server runs on Linux on the CPU: it needs MLX's CPU back end at MLX's version, and
torch's CPU build (PyPI's default for Linux is a CUDA build of several GB). Both are added
only when the site pins the server and has not pinned them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from localai_provision.layout import SERVER_PACKAGE
from localai_provision.site.model import HostSpec, package_base_name


@dataclass(frozen=True)
class Addition:
    name: str  # the distribution the venv holds: "mlx-cpu", "torch"
    version: str
    reason: str  # why the tool adds it, in words
    requirement: str  # how a resolver is asked for it: "mlx[cpu]==0.29.3", "torch==2.13.0+cpu"
    replaces: str | None = None  # the pinned requirement it stands in for ("mlx": mlx[cpu])


def linux_additions(spec: HostSpec) -> list[Addition]:
    """The packages a Linux host gets besides the site's pins (none without the server)."""
    if SERVER_PACKAGE not in spec.packages:
        return []
    bases = {package_base_name(n) for n in spec.packages}
    mlx = next((v for n, v in spec.packages.items() if package_base_name(n) == "mlx"), None)
    additions = []
    if mlx and "mlx-cpu" not in bases:
        additions.append(
            Addition(
                name="mlx-cpu",
                version=mlx,
                reason="Linux host: MLX's CPU back end (mlx[cpu]) at MLX's version",
                requirement=f"mlx[cpu]=={mlx}",
                replaces="mlx",
            )
        )
    if "torch" not in bases:
        additions.append(
            Addition(
                name="torch",
                version=spec.linux.torch,
                reason="Linux host: the CPU build of torch (PyPI's default is a CUDA build of "
                "several GB)",
                requirement=f"torch=={spec.linux.torch}",
            )
        )
    return additions
