"""The paper's iterative merge of neighbouring codebook values.

Walk the groups of a codebook; at group j score the merge with the left neighbour and
the merge with the right neighbour (merged value: the weighted mean); take the better of
the two if its search score is at least ``max(current, start) - tolerance``, where
``current`` is the score now and ``start`` the score before any merge. So with
``tolerance = 0`` a merge is kept only when it loses nothing (the paper's rule), and with
``tolerance > 0`` the score never ends more than ``tolerance`` below where it started.
Passes repeat until one accepts nothing.
"""

from __future__ import annotations

from typing import Callable

from wsc.codebook import Codebook


def merge(cb: Codebook, score: Callable[[list[Codebook]], list[float]], *, tolerance: float = 0.0,
          on_pass: Callable[[dict], None] | None = None) -> tuple[Codebook, float]:
    """Iteratively merge neighbouring values of ``cb``; returns the final codebook and its score.

    ``score(codebooks)`` returns the search score of each codebook (cached by the caller).
    """
    current = score([cb])[0]
    start = current
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
            best = max(range(len(options)), key=lambda i: (scores[i], -i))  # ties: left first
            if scores[best] >= max(current, start) - tolerance:
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
