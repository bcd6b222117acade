"""The device fingerprint: parsing /proc and /sys, stability, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from records import DeviceRecord
from tuner.device import Device, current_device, isa_flags, parse_cpuinfo, read_cache_sizes

X86 = """\
processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 143
model name\t: Intel(R) Xeon(R)   Platinum 8480+
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f avx512bw avx512_bf16 amx_tile amx_int8 avx_vnni

processor\t: 1
model name\t: something else
flags\t\t: fpu
"""

ARM = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp sve i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd40

processor\t: 1
Features\t: fp
"""


def test_cpuinfo_parsing_keeps_the_isa_flags_that_matter() -> None:
    model, flags = parse_cpuinfo(X86)
    assert model == "Intel(R) Xeon(R)   Platinum 8480+"
    assert isa_flags(flags) == (
        "amx_int8", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512bw", "avx512f", "avx_vnni", "bmi2", "f16c",
        "fma", "sse4_1", "sse4_2",
    )
    model, flags = parse_cpuinfo(ARM)
    assert model == "arm implementer 0x41 part 0xd40"
    assert isa_flags(flags) == ("asimd", "asimddp", "asimdhp", "bf16", "fphp", "i8mm", "sve")
    assert parse_cpuinfo("") == ("", set())


def test_cache_sizes_from_sysfs(tmp_path: Path) -> None:
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                             (3, "Unified", "105M"), (4, "Unified", "weird")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert read_cache_sizes(tmp_path) == (("L1d", 48 << 10), ("L1i", 32 << 10), ("L2", 2 << 20), ("L3", 105 << 20))
    assert read_cache_sizes(tmp_path / "absent") == ()


def test_fingerprint_covers_exactly_what_affects_generated_code() -> None:
    d = Device("CPU X", 8, ("avx2", "fma"), (("L2", 1 << 20),), None, "Linux", "x86_64",
               (("tvm", "0.27.0"), ("torch", "2.13.0"), ("tunebird", "0.1.0")), python="3.11.7")
    same = Device("CPU  X", 8, ("fma", "avx2", "fma"), {"L2": 1 << 20}.items(), None, "Linux", "x86_64",  # type: ignore[arg-type]
                  {"tunebird": "0.1.0", "torch": "2.13.0", "tvm": "0.27.0"}.items(), python="3.12.0")  # type: ignore[arg-type]
    assert same.fingerprint == d.fingerprint and len(d.fingerprint) == 64
    for change in ({"n_cores": 4}, {"isa_flags": ("avx2",)}, {"cpu_model": "CPU Y"}, {"gpu": "NVIDIA A100"},
                   {"versions": (("tvm", "0.28.0"),)}, {"cache_sizes": (("L2", 2 << 20),)}, {"arch": "aarch64"}):
        assert dataclasses.replace(d, **change).fingerprint != d.fingerprint, change


def test_fingerprint_is_stable_across_releases() -> None:
    d = Device("CPU X", 8, ("avx2",), (("L2", 1 << 20),), None, "Linux", "x86_64", (("tvm", "0.27.0"),))
    # Changing this value invalidates every stored tuning log: bump FINGERPRINT_VERSION instead.
    assert d.fingerprint == FINGERPRINT_X


FINGERPRINT_X = "0938046936609ac5f5abbbbe25280c112e6380d42cc3211e811df89dea4d412b"


def test_current_device_round_trips_through_json_and_records() -> None:
    d = current_device()
    assert d.n_cores >= 1 and d.cpu_model and d.os and d.arch
    assert dict(d.versions).keys() == {"tvm", "torch", "tunebird"}
    again = Device.from_dict(json.loads(d.to_json()))
    assert again == d and again.fingerprint == d.fingerprint
    record = DeviceRecord.from_device(d)
    assert (record.fingerprint, record.n_cores, record.isa_flags) == (d.fingerprint, d.n_cores, d.isa_flags)
    assert Device.from_dict(record.info) == d
    with pytest.raises(ValueError, match="unknown device fields"):
        Device.from_dict({**d.to_dict(), "colour": "blue"})
    with pytest.raises(ValueError, match="n_cores must be an int >= 1, got 0"):
        dataclasses.replace(d, n_cores=0)


def test_records_and_the_fingerprint_do_not_import_torch_or_tvm() -> None:
    code = (
        "import sys, types, records, records.sql, records.jsonl, records.report\n"
        "pkg = types.ModuleType('tuner'); pkg.__path__ = ['tuner']; sys.modules['tuner'] = pkg  # not tuner/__init__\n"
        "import tuner.device; tuner.device.current_device()\n"
        "print(sorted(x for x in ('torch', 'tvm') if x in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
