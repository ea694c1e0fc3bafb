"""The GPU this process computes on: a probe read at scrape time and at each EMF interval.

``TorchCudaProbe`` samples the device; ``GpuCollector`` turns a sample into Prometheus gauges.
A probe is an argument of ``ServiceMetrics`` so tests can hand in a fixed sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class GpuSample:
    device: str
    memory_used_bytes: int  # the whole device, every process (what runs out first)
    memory_total_bytes: int
    torch_reserved_bytes: int  # this process's CUDA caching allocator
    utilization_percent: float | None  # NVML; None where NVML cannot be read

    @property
    def memory_used_percent(self) -> float:
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes if self.memory_total_bytes else 0.0


class GpuProbe(Protocol):
    def sample(self) -> GpuSample | None: ...


class TorchCudaProbe:
    """The GPU this process computes on, through torch.cuda; None when it uses none.

    Only a process that has initialised CUDA reports: a CPU task, or ``DEVICE=cpu`` on a GPU
    host, reports nothing, and the GPU metrics are absent rather than zero. Utilisation comes
    from NVML (torch.cuda.utilization reads it through nvidia-ml-py); memory from the CUDA
    runtime, so it is there even where NVML is not.
    """

    def sample(self) -> GpuSample | None:
        import torch  # the server has it loaded already; the import keeps this module light

        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return None
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        utilization: float | None
        try:
            utilization = float(torch.cuda.utilization(index))
        except Exception:  # no nvidia-ml-py, no NVML in the container: memory still reports
            utilization = None
        return GpuSample(
            device=f"cuda:{index}",
            memory_used_bytes=int(total - free),
            memory_total_bytes=int(total),
            torch_reserved_bytes=int(torch.cuda.memory_reserved(index)),
            utilization_percent=utilization,
        )


class GpuCollector(Collector):
    """Prometheus gauges read at scrape time; no sample, no series."""

    def __init__(self, probe: GpuProbe) -> None:
        self._probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sample = self._probe.sample()
        if sample is None:
            return
        labels = ["device"]
        families: list[tuple[str, str, float]] = [
            (
                "asr_gpu_memory_used_bytes",
                "GPU memory in use on the device (all processes)",
                sample.memory_used_bytes,
            ),
            ("asr_gpu_memory_total_bytes", "GPU memory of the device", sample.memory_total_bytes),
            (
                "asr_gpu_torch_reserved_bytes",
                "GPU memory held by this process's torch allocator",
                sample.torch_reserved_bytes,
            ),
        ]
        if sample.utilization_percent is not None:
            families.append(
                (
                    "asr_gpu_utilization_ratio",
                    "GPU busy share over NVML's last sample period (0-1)",
                    sample.utilization_percent / 100,
                )
            )
        for name, documentation, value in families:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            family.add_metric([sample.device], float(value))
            yield family
