"""Where and how a block trains: the device, the engine mode, CPU allocator settings.

Small, import-light helpers shared by the engine, the CLI and the block-size choice.
"""

from __future__ import annotations

import ctypes
import os
import sys

import torch

from harness.errors import HarnessError

MODES = ("auto", "vmap", "loop")
# glibc malloc on CPU: keep freed memory mapped (see tune_cpu_allocator).
ALLOCATOR_ENV = "HARNESS_CPU_ALLOCATOR"  # "default" leaves malloc as it is
MMAP_THRESHOLD = 256 * 2**20
# The CPU block cap (engine.auto_block_size), overridable per worker: a worker's environment
# sets how many seeds it stacks on its CPU (issue 23: the worker, not the driver, sizes blocks).
CPU_BLOCK_ENV = "HARNESS_CPU_MAX_BLOCK"
TRIM_THRESHOLD = 512 * 2**20
_allocator_tuned = False


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is a user error."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"--device {device}: no CUDA device is visible here; use --device auto or cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise HarnessError(f"--device {device!r}: expected auto, cpu or cuda[:N]")
    return torch.device(device)


def cpu_block_cap(default: int) -> int:
    """The most seeds a block stacks on a CPU: ``$HARNESS_CPU_MAX_BLOCK``, else ``default``."""
    raw = os.environ.get(CPU_BLOCK_ENV, "").strip()
    if not raw:
        return default
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise HarnessError(f"${CPU_BLOCK_ENV}={raw!r}: expected a positive integer (seeds per block on a CPU)\n"
                           f"  hint: unset it for the default ({default})")
    return cap


def tune_cpu_allocator() -> bool:
    """Stop glibc malloc from handing every large tensor back to the kernel (once per process).

    By default glibc serves blocks above 128 KB-32 MB with fresh ``mmap`` pages and trims the
    heap eagerly, so every step's multi-MB activations and gradients are page-faulted in anew:
    on the 2-core machine that was 12-20 % of a training step (a 4.5 MB clone: 0.87 ms with
    300 page faults, 0.15 ms with none). Raising ``M_MMAP_THRESHOLD`` to 256 MB and
    ``M_TRIM_THRESHOLD`` to 512 MB keeps that memory mapped and reused; the cost is that the
    process keeps up to 512 MB of freed heap instead of returning it to the system.
    Called by ``train_block`` on CPU; a no-op off glibc, or with ``HARNESS_CPU_ALLOCATOR=default``.
    Returns whether the setting is in force.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if os.environ.get(ALLOCATOR_ENV, "tuned") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        _allocator_tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc
        return False
    return _allocator_tuned


def resolve_mode(mode: str, device: torch.device) -> str:
    """``auto`` is ``vmap`` on every device: on CUDA one batched kernel per layer for all seeds;
    on a 2-core CPU it measured 5 % faster than ``loop`` on one thread and 1.8x on two (the
    per-seed kernels of ``loop`` are too small to use both cores)."""
    if mode not in MODES:
        raise HarnessError(f"engine mode {mode!r}: expected one of {list(MODES)}")
    if mode == "auto":
        return "vmap"
    return mode
