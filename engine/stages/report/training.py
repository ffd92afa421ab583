"""The training side of a report: `po_tui_train.json` and `loss_history.json`, wherever they are.

`po-tui train` writes both into the adapter folder. A report finds them through the student's
results file (its embedded `po_tui.train`, or its `adapter_path`), in the run directory, or in
a folder named with `--train`. Either file may be missing; the snapshot says what it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.numbers import finite
from engine.errors import InputError
from engine.store.inputfile import read_json

TRAIN_INFO = "po_tui_train.json"
LOSS_HISTORY = "loss_history.json"


@dataclass
class TrainingSnapshot:
    """What the report says about training: the recorded info and the loss curve."""

    source: str  # where it was found, for the report's Files section
    info: dict[str, Any] = field(default_factory=dict)
    losses: list[tuple[float, float]] = field(default_factory=list)  # (step, training loss)
    eval_losses: list[tuple[float, float]] = field(default_factory=list)

    def _loss(self, key: str) -> float | None:
        recorded = (self.info.get("loss") or {}).get(key) if isinstance(self.info.get("loss"), dict) else None
        if isinstance(recorded, (int, float)) and not isinstance(recorded, bool):
            return float(recorded)
        values = [v for _, v in self.losses]
        if not values:
            if key == "final_eval" and self.eval_losses:
                return self.eval_losses[-1][1]
            return None
        return {"first": values[0], "final": values[-1], "mean": sum(values) / len(values)}.get(key)

    @property
    def first_loss(self) -> float | None:
        return self._loss("first")

    @property
    def final_loss(self) -> float | None:
        return self._loss("final")

    @property
    def mean_loss(self) -> float | None:
        return self._loss("mean")

    @property
    def final_eval_loss(self) -> float | None:
        return self._loss("final_eval")

    @property
    def probes(self) -> list[dict[str, Any]]:
        """The held-out probes made while training (`train.probe_every`), by step; rows that a
        damaged or foreign file carries without an integer step and numbers are left out."""
        rows = self.info.get("probes")
        if not isinstance(rows, list):
            return []
        out = []
        for row in rows:
            if not isinstance(row, dict) or not _is_int(row.get("step")):
                continue
            if all(finite(row.get(k)) is not None for k in ("prompts", "valid", "mean")) and row["prompts"] > 0:
                out.append(row)
        return sorted(out, key=lambda r: r["step"])

    @property
    def duration_s(self) -> float | None:
        for key in ("duration_s", "train_runtime_s"):
            value = self.info.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "base_model": self.info.get("base_model"),
            "loss": {"first": self.first_loss, "final": self.final_loss, "mean": self.mean_loss,
                     "final_eval": self.final_eval_loss},
            "steps": self.info.get("steps"),
            "duration_s": self.duration_s,
            "hyperparameters": self.info.get("hyperparameters"),
            "hardware": self.info.get("hardware"),
            "loss_points": len(self.losses),
            "probes": [{k: row.get(k) for k in ("step", "prompts", "valid", "complete", "valid_rate", "mean")}
                       for row in self.probes],
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_json(path: Path, kind: type) -> Any:
    doc = read_json(path, strict=False)  # the Trainer writes a diverged run's NaN loss as NaN
    if not isinstance(doc, kind):
        raise InputError(f"expected a JSON {kind.__name__}, got {type(doc).__name__}", path=path)
    return doc


def read_loss_history(path: Path) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(training losses, eval losses) as (step, value) from the Trainer's log history."""
    rows = _read_json(path, list)
    losses: list[tuple[float, float]] = []
    evals: list[tuple[float, float]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"expected an object, got {type(row).__name__}", path=path, field=f"[{i}]")
        step = row.get("step", i)
        step = float(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else float(i)
        for key, out in (("loss", losses), ("eval_loss", evals)):
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((step, float(value)))
    return losses, evals


def has_training_files(folder: Path) -> bool:
    return (folder / TRAIN_INFO).is_file() or (folder / LOSS_HISTORY).is_file()


def read_training_dir(folder: Path, embedded: dict | None = None) -> TrainingSnapshot:
    """The snapshot of an adapter (or run) folder; `embedded` stands in for a missing info file."""
    info_path, history_path = folder / TRAIN_INFO, folder / LOSS_HISTORY
    info = _read_json(info_path, dict) if info_path.is_file() else dict(embedded or {})
    losses, evals = read_loss_history(history_path) if history_path.is_file() else ([], [])
    return TrainingSnapshot(str(folder), info, losses, evals)


def find_training_dir(candidates: list[Path], search_root: Path | None, *, depth: int = 3) -> Path | None:
    """The first candidate folder holding training files, else the newest one under `search_root`."""
    for folder in candidates:
        if folder.is_dir() and has_training_files(folder):
            return folder
    if search_root is None or not search_root.is_dir():
        return None
    files = walk_files(search_root, depth)
    markers = [p for p in files if p.name == TRAIN_INFO] or [p for p in files if p.name == LOSS_HISTORY]
    return max(markers, key=lambda p: p.stat().st_mtime).parent if markers else None


def walk_files(root: Path, depth: int) -> list[Path]:
    """Files under root down to `depth` levels, skipping hidden folders and training checkpoints."""
    out: list[Path] = []
    stack = [(root, 0)]
    while stack:
        folder, level = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                if level < depth and not entry.name.startswith(".") and entry.name != "checkpoints":
                    stack.append((entry, level + 1))
            elif entry.is_file():
                out.append(entry)
    return out

