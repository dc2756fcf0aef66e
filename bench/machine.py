"""One line describing the machine a benchmark ran on (nproc, CPU model, versions, load), for every bench."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    """nproc, CPU model (/proc/cpuinfo), Python and torch versions (with CUDA: CUDA, cuDNN, the GPU), load
    average; flags a busy machine."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch

        torch_version = torch.__version__
        if torch.cuda.is_available():  # GPU figures depend on the GPU and on CUDA's and cuDNN's versions
            torch_version += (f" (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                              f"{torch.cuda.get_device_name(0)})")
    except ImportError:  # pragma: no cover
        torch_version = "none"
    load = os.getloadavg()
    busy = load[0] > (os.cpu_count() or 1)
    return (f"machine: nproc={os.cpu_count()}, CPU {model}, python {platform.python_version()}, "
            f"torch {torch_version}, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
            + (" (SHARED MACHINE UNDER LOAD: absolute timings are pessimistic)" if busy else ""))
