"""SIGINT / SIGTERM during training: finish the current step, save a checkpoint, stop.

A signal handler must not touch tensors or files (it can fire in the middle of an optimiser step),
so it only records the signal; the training loop looks at `received` once per step. A second
Ctrl-C interrupts at once (checkpoint writes are atomic, so even that loses nothing saved).
"""

from __future__ import annotations

import signal
import threading


class StopOnSignal:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def flag(self, device) -> "torch.Tensor":
        """1.0 once a signal came, as a tensor to reduce over ranks with the other statistics."""
        import torch

        return torch.tensor([float(self.received is not None)], device=device)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
        return 128 + int(self.received) if self.received else 128 + int(signal.SIGTERM)  # another rank's signal
