"""The device fingerprint: what about this machine makes tuned results (in)valid elsewhere.

Tuning results carry over only to a machine that generates and runs the same
code: the same CPU model and ISA extensions, core count, cache sizes, GPU,
OS/architecture and the versions of the code generators (tvm, torch,
tunebird).  :attr:`Device.fingerprint` hashes exactly those.

Nothing here imports tvm or torch: versions are read from package metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

FINGERPRINT_VERSION = 1

# ISA extensions that change generated code; prefixes cover whole families.
ISA_FLAGS = frozenset({
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx_vnni_int8", "avx_ne_convert",
    "avx_ifma", "neon", "asimd", "asimddp", "asimdhp", "asimdfhm", "fphp", "sve", "sve2", "i8mm", "bf16",
    "svebf16", "svei8mm", "sme", "sme2", "vsx", "altivec",
})
ISA_PREFIXES = ("avx512", "amx", "avx10")

# distribution name(s) of each code generator whose version matters
PACKAGES: dict[str, tuple[str, ...]] = {
    "tvm": ("apache-tvm", "tvm"),
    "torch": ("torch",),
    "tunebird": ("tunebird",),
}

_CACHE_SIZE = re.compile(r"(\d+)\s*([KMG]?)", re.IGNORECASE)


@dataclass(frozen=True)
class Device:
    """A machine as far as generated code is concerned.  JSON-able via :meth:`to_dict`.

    ``cache_sizes`` and ``versions`` are tuples of ``(name, value)`` pairs
    (dicts in :meth:`to_dict`).  ``python`` is informational and not part of
    the fingerprint.
    """

    cpu_model: str
    n_cores: int
    isa_flags: tuple[str, ...] = ()
    cache_sizes: tuple[tuple[str, int], ...] = ()
    gpu: str | None = None
    os: str = ""
    arch: str = ""
    versions: tuple[tuple[str, str | None], ...] = ()
    python: str = ""

    FINGERPRINT_FIELDS: ClassVar[tuple[str, ...]] = (
        "cpu_model", "n_cores", "isa_flags", "cache_sizes", "gpu", "os", "arch", "versions",
    )

    def __post_init__(self) -> None:
        s = object.__setattr__
        if isinstance(self.n_cores, bool) or not isinstance(self.n_cores, int) or self.n_cores < 1:
            raise ValueError(f"n_cores must be an int >= 1, got {self.n_cores!r}")
        s(self, "cpu_model", " ".join(str(self.cpu_model).split()))
        s(self, "isa_flags", tuple(sorted(set(self.isa_flags))))
        s(self, "cache_sizes", tuple(sorted((str(k), int(v)) for k, v in dict(self.cache_sizes).items())))
        s(self, "versions", tuple(sorted((str(k), None if v is None else str(v)) for k, v in dict(self.versions).items())))

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the fields that affect generated code; stable across runs and machines."""
        data = {name: self.to_dict()[name] for name in self.FINGERPRINT_FIELDS}
        data["fingerprint_version"] = FINGERPRINT_VERSION
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["isa_flags"] = list(self.isa_flags)
        out["cache_sizes"] = dict(self.cache_sizes)
        out["versions"] = dict(self.versions)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Device:
        """The device described by :meth:`to_dict` output (unknown keys are rejected)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown device fields {unknown}; expected some of {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def summary(self) -> str:
        """One line for people: CPU, cores, ISA, GPU, OS/arch."""
        gpu = f", {self.gpu}" if self.gpu else ""
        return f"{self.cpu_model}, {self.n_cores} cores, {' '.join(self.isa_flags) or 'no ISA extensions'}{gpu}, {self.os}/{self.arch}"


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """The CPU model name and all flags of the first processor in ``/proc/cpuinfo`` text (x86 or ARM)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info.get("processor") is not None and ("flags" in info or "features" in info):
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip().lower(), value.strip())
    model = info.get("model name") or info.get("hardware") or info.get("model") or info.get("cpu", "")
    if "cpu implementer" in info and "model name" not in info:
        model = f"arm implementer {info['cpu implementer']} part {info.get('cpu part', '?')}"
    flags = set((info.get("flags") or info.get("features") or "").split())
    return model, flags


def isa_flags(flags: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The flags that matter for generated code, sorted."""
    return tuple(sorted(f for f in flags if f in ISA_FLAGS or f.startswith(ISA_PREFIXES)))


def read_cache_sizes(cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> tuple[tuple[str, int], ...]:
    """``(("L1d", bytes), ("L1i", …), ("L2", …), ("L3", …))`` from Linux sysfs; empty where unknown."""
    sizes: dict[str, int] = {}
    for index in sorted(cache_dir.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        m = _CACHE_SIZE.fullmatch(size)
        if not m:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        sizes[f"L{level}{suffix}"] = int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]
    return tuple(sorted(sizes.items()))


def package_versions() -> tuple[tuple[str, str | None], ...]:
    """Installed versions of the code generators (None when absent), from metadata only."""
    out = []
    for name, dists in PACKAGES.items():
        version = None
        for dist in dists:
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        out.append((name, version))
    return tuple(out)


def gpu_name() -> str | None:
    """The GPU model(s), from the NVIDIA driver's /proc entries, or from torch if it is already imported."""
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    names.append(line.partition(":")[2].strip())
        except OSError:
            continue
    torch = sys.modules.get("torch")
    if not names and torch is not None:
        try:
            if torch.cuda.is_available():
                names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # a broken CUDA set-up means no usable GPU
            names = []
    return ", ".join(names) or None


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))  # pragma: no cover - non-Linux


def usable_cores() -> int:
    """How many CPUs this process may run on."""
    return len(usable_cpus())


_core_count = usable_cores


def current_device() -> Device:
    """The machine this process runs on (the cores it may use, not all the machine has)."""
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        model, flags = "", set()
    return Device(
        cpu_model=model or platform.processor() or platform.machine() or "unknown",
        n_cores=_core_count(),
        isa_flags=isa_flags(flags),
        cache_sizes=read_cache_sizes(),
        gpu=gpu_name(),
        os=platform.system(),
        arch=platform.machine(),
        versions=package_versions(),
        python=platform.python_version(),
    )
