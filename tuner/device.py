"""Device facts and the device fingerprint (they live in :mod:`strategies.ground.device`)."""

from strategies.ground.device import *  # noqa: F403
from strategies.ground.device import (  # noqa: F401
    FINGERPRINT_VERSION,
    ISA_FLAGS,
    ISA_PREFIXES,
    PACKAGES,
    Device,
    current_device,
    gpu_name,
    isa_flags,
    package_versions,
    parse_cpuinfo,
    read_cache_sizes,
    usable_cores,
    usable_cpus,
)
