"""The teacher's finished samples as the cockpit counts them: score bins and outcomes from one source.

The Teacher tab once showed a histogram total (from `teacher_sample` events) beside accepted and
rejected counts (from `teacher_stats`, sent at most twice a second), so mid-run the two disagreed
(28 vs 24): the stats lag the samples, a reject without a score (a provider error) is in the counts
but has no bin, and such a reject is asked again on resume and finishes a second time. Here the
bins and the accepted/rejected counts are folded from the same events, so the histogram always
sums to `scored` = scored_accepted + scored_rejected; the panel shows the fresher of these counts
and the stats' (which also include samples finished before this log began).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.core.numbers import finite_float

HIST_BINS = 10


def score_bin(score: float, bins: int = HIST_BINS) -> int:
    """The bin of a finite score in [0, 1] (the last bin includes 1.0; out-of-range scores, however
    large, go to the ends)."""
    return min(bins - 1, max(0, int(min(1.0, max(0.0, score)) * bins)))


class SampleTally:
    """Score bins, outcomes and review statuses of the finished samples in a teacher job's log.

    Grows by a fixed number of bins, except the keys of rejects without a score (provider errors),
    kept so that the same sample finishing again on a resumed run replaces its first outcome.
    """

    def __init__(self) -> None:
        self.bins = [0] * HIST_BINS
        self.accepted = 0
        self.rejected = 0
        self.scored_accepted = 0  # of them with a score, so in a bin
        self.scored_rejected = 0
        self.statuses: Counter[str] = Counter()
        self._unscored_keys: dict[tuple[Any, Any], str] = {}  # key -> the status it was counted under

    @property
    def scored(self) -> int:
        """The histogram's total: scored_accepted + scored_rejected."""
        return sum(self.bins)

    @property
    def unscored(self) -> int:
        """Finished without a score (a provider error): counted as rejected, in no bin."""
        return self.accepted + self.rejected - self.scored

    def add(self, data: dict[str, Any]) -> None:
        """Fold one `teacher_sample` event's data."""
        outcome = data.get("outcome")
        if outcome not in ("accepted", "rejected"):
            return
        key = (str(data.get("concept_id")), str(data.get("variant")))  # hashable whatever the event holds
        earlier = self._unscored_keys.pop(key, None)
        if earlier is not None:  # asked again after a provider error: this outcome replaces that one
            self.rejected -= 1
            self.statuses[earlier] -= 1
            if self.statuses[earlier] <= 0:
                del self.statuses[earlier]
        status = data["status"] if isinstance(data.get("status"), str) else "invalid"
        self.statuses[status] += 1
        score = finite_float(data.get("score"))
        if outcome == "accepted":
            self.accepted += 1
            self.scored_accepted += score is not None  # an accepted sample has a score; one without is in no bin
        else:
            self.rejected += 1
            self.scored_rejected += score is not None
        if score is not None:
            self.bins[score_bin(score)] += 1
        elif outcome == "rejected":
            self._unscored_keys[key] = status
