"""The paper's iterative merge of neighbouring codebook values.

Walk the groups of a codebook; at group j score the merge with the left neighbour and
the merge with the right neighbour (merged value: the weighted mean); take the better of
the two if its search score is at least ``max(current, start) - tolerance``, where
``current`` is the score now and ``start`` the score before any merge. So with
``tolerance = 0`` a merge is kept only when it loses nothing (the paper's rule), and with
``tolerance > 0`` the score never ends more than ``tolerance`` below where it started.
Passes repeat until one accepts nothing.

With ``bounded=True`` (variance-aware selection, :mod:`wsc.confidence`) a score is a pair
(value, upper confidence bound of the drop from the uncompressed model) and the rule is
the one that selects solutions: the better option is the one with the lower bound, taken if
that bound is at most ``max(tolerance, bound at the start)`` — a codebook within the
tolerance merges while it stays within it, and one that starts beyond it never gets
(statistically) worse than where it started.
"""

from __future__ import annotations

from typing import Callable

from wsc.codebook import Codebook


def merge(cb: Codebook, score: Callable[[list[Codebook]], list], *, tolerance: float = 0.0,
          bounded: bool = False, on_pass: Callable[[dict], None] | None = None) -> tuple[Codebook, object]:
    """Iteratively merge neighbouring values of ``cb``; returns the final codebook and its score.

    ``score(codebooks)`` returns the search score of each codebook (cached by the caller):
    a float, or with ``bounded`` a (value, drop bound) pair.
    """
    current = score([cb])[0]
    start = current
    if bounded:
        def merit(s):
            return -s[1]

        def accept(s):
            return s[1] <= max(tolerance, start[1])
    else:
        def merit(s):
            return s

        def accept(s):
            return s >= max(current, start) - tolerance

    passes = 0
    while cb.size > 1:
        passes += 1
        accepted = 0
        j = 0
        while j < cb.size and cb.size > 1:
            options = []
            if j > 0:
                options.append((cb.merge(j - 1), "left"))
            if j < cb.size - 1:
                options.append((cb.merge(j), "right"))
            scores = score([c for c, _ in options])
            best = max(range(len(options)), key=lambda i: (merit(scores[i]), -i))  # ties: left first
            if accept(scores[best]):
                cb, current = options[best][0], scores[best]
                accepted += 1
                if options[best][1] == "right":
                    j += 1  # the merged group is at j; its right part is done
            else:
                j += 1
        if on_pass is not None:
            on_pass({"pass": passes, "accepted": accepted, "values": cb.size, "score": current})
        if accepted == 0:
            break
    return cb, current


__all__ = ["merge"]
