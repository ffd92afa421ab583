"""The NVML sampler: a thread in the job process that writes a `gpu` event every few seconds.

Where it runs, and why there: in the process that holds the running job's event log (the
stage command's `job_events`, or rank 0 of training, engine/stages/train/worker.py). Jobs of a
run run one after another, so every stage of a live run is sampled, once: not once per torchrun
rank (only rank 0 holds the log), and without a second log or a second writer (an event log has
one writer, its file lock says so). The engine turns it on for its jobs by setting
PO_TUI_GPU_SAMPLE_S (from `monitor.gpu_sample_s`); a stage command run by hand samples only when
that variable is set.

Absent NVML costs nothing: one check at start (import pynvml, nvmlInit, the devices, a first
reading); no module, no driver, no device or any NVML error there means no thread and no event,
never an exception (a debug log line at most). An NVML call that fails later stops the sampling with one
`warning` event; the job goes on. The source is injectable (`nvml=`): tests use a fake module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Callable, Iterator

from engine.core.numbers import finite
from engine.errors import InputError
from engine.runlog.gpu import GPU_EVENT, MIN_INTERVAL_S

GPU_ENV = "PO_TUI_GPU_SAMPLE_S"
DEFAULT_SAMPLE_S = 5.0
JOIN_S = 5.0  # stop() waits this long for a sample in progress (NVML calls take milliseconds)
NVML_ERROR_NOT_SUPPORTED = 3  # pynvml.NVML_ERROR_NOT_SUPPORTED: a field this board does not report
WARNING_CODE = "gpu_sampler_stopped"

log = logging.getLogger(__name__)


def load_nvml() -> Any | None:
    """The pynvml module (package nvidia-ml-py, the `gpu` extra), or None when it is not installed."""
    try:
        import pynvml
    except Exception as exc:  # not installed, or broken: the run goes on without GPU health
        log.debug("GPU health off: pynvml not importable (%s)", exc)
        return None
    return pynvml


def interval_from_env(environ: dict[str, str] | None = None) -> float | None:
    """The sampling interval the engine asked for (PO_TUI_GPU_SAMPLE_S), or None: do not sample.

    The engine validated the value before it started the job; here an unreadable one (a hand
    set variable) turns sampling off rather than failing the job.
    """
    raw = (os.environ if environ is None else environ).get(GPU_ENV)
    if raw is None or not raw.strip():
        return None
    try:
        value = finite(float(raw))
    except ValueError:
        value = None
    if value is None or value <= 0:
        return None
    return max(MIN_INTERVAL_S, value)


def jobs_environment(sample_s: float, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the engine starts its jobs with: PO_TUI_GPU_SAMPLE_S from the config's
    `monitor.gpu_sample_s`, unless the engine's own environment sets it (that wins, so
    `PO_TUI_GPU_SAMPLE_S=0 po-tui run ...` turns sampling off for one run). A value that is not
    seconds >= 0 is refused here, before any job starts."""
    env = dict(os.environ if environ is None else environ)
    raw = env.get(GPU_ENV)
    if raw is None or not raw.strip():
        env[GPU_ENV] = f"{float(sample_s):g}"
        return env
    try:
        value = finite(float(raw))
    except ValueError:
        value = None
    if value is None or value < 0:
        raise InputError(f"{raw.strip()[:40]!r}: expected seconds between GPU samples, 0 or more (0: off)", field=GPU_ENV)
    return env


class GpuSampler:
    """Samples every NVML device each `interval_s` into `writer` (an EventWriter) from a thread.

    `wait(timeout)` is how the thread sleeps between samples and learns it must stop (True);
    tests pass a fake one to drive the sampling deterministically.
    """

    def __init__(self, writer: Any, interval_s: float = DEFAULT_SAMPLE_S, *, nvml: Any | None = None,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.writer = writer
        self.interval_s = max(MIN_INTERVAL_S, float(interval_s))
        self._nvml = nvml
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._handles: list[Any] = []
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.stopped_by: str | None = None  # why sampling ended early (an NVML error), if it did

    # -- the one check at start ----------------------------------------------------------------

    def start(self) -> bool:
        """Open NVML and start the thread; False (and nothing started) when there is nothing to sample."""
        nvml = self._nvml if self._nvml is not None else load_nvml()
        if nvml is None:
            return False
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # no driver, no device, a container without NVML
            log.debug("GPU health off: nvmlInit failed (%s)", exc)
            return False
        try:
            count = int(nvml.nvmlDeviceGetCount())
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:
            log.debug("GPU health off: listing devices failed (%s)", exc)
            self._shutdown()
            return False
        if not self._handles:
            log.debug("GPU health off: NVML sees no device")
            self._shutdown()
            return False
        try:
            first = self.sample()  # a device that cannot be read at all is part of the check at start
        except Exception as exc:
            log.debug("GPU health off: reading the devices failed (%s)", exc)
            self._shutdown()
            return False
        thread = threading.Thread(target=self._run, args=(first,), name="po-tui-gpu-sampler", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had (a process at its limit): the job goes on
            log.debug("GPU health off: no sampler thread (%s)", exc)
            self._shutdown()
            return False
        self._thread = thread
        return True

    def stop(self) -> None:
        """Stop sampling and wait for the thread (before the job writes job_finished)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- sampling ------------------------------------------------------------------------------

    def _field(self, call: Callable[..., Any], *args: Any) -> Any:
        """One NVML reading; None where the board does not support it (power on some cards)."""
        try:
            return call(*args)
        except Exception as exc:
            not_supported = getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED)
            if getattr(exc, "value", None) == not_supported:
                return None
            raise

    def sample(self) -> list[dict[str, Any]]:
        """Every device's utilisation, memory, temperature and power, as a `gpu` event holds them."""
        nvml = self._nvml
        devices = []
        for index, handle in enumerate(self._handles):
            name = self._field(nvml.nvmlDeviceGetName, handle)
            util = self._field(nvml.nvmlDeviceGetUtilizationRates, handle)
            mem = self._field(nvml.nvmlDeviceGetMemoryInfo, handle)
            temp = self._field(nvml.nvmlDeviceGetTemperature, handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
            power = self._field(nvml.nvmlDeviceGetPowerUsage, handle)
            limit = self._field(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            devices.append({
                "index": index,
                "name": name.decode("utf-8", "replace") if isinstance(name, bytes) else name,
                "util_pct": _int(getattr(util, "gpu", None)),
                "mem_used_bytes": _int(getattr(mem, "used", None)),
                "mem_total_bytes": _int(getattr(mem, "total", None)),
                "temp_c": _int(temp),
                "power_w": _watts(power),
                "power_limit_w": _watts(limit),
            })
        return devices

    def _run(self, first: list[dict[str, Any]]) -> None:
        """Write the sample taken at start, then one after each interval until `wait` says stop
        (stop() makes the default one say so at once); an error ends it with one warning."""
        try:
            devices = first
            while True:
                self.writer.emit(GPU_EVENT, interval_s=self.interval_s, devices=devices)
                self.samples += 1
                if self._wait(self.interval_s):
                    break
                devices = self.sample()
        except Exception as exc:
            self.stopped_by = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # the log itself failing: nothing left to tell
                self.writer.warning(f"GPU sampling stopped: {self.stopped_by}", code=WARNING_CODE)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


def _int(value: Any) -> int | None:
    number = finite(value)
    return None if number is None else int(number)


def _watts(milliwatts: Any) -> float | None:
    number = finite(milliwatts)
    return None if number is None else round(number / 1000.0, 1)


@contextlib.contextmanager
def gpu_sampling(writer: Any, interval_s: float | None = None, *, nvml: Any | None = None) -> Iterator[GpuSampler | None]:
    """Sample GPUs into `writer` for the duration of the block (at the engine's interval by
    default); yields the sampler, or None when sampling is off. Never raises on NVML's account."""
    interval = interval_from_env() if interval_s is None else interval_s
    sampler = GpuSampler(writer, interval, nvml=nvml) if interval else None
    if sampler is not None and not sampler.start():
        sampler = None
    try:
        yield sampler
    finally:
        if sampler is not None:
            sampler.stop()
