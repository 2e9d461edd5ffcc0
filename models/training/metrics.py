"""The quality metrics of docs/benchmarks.md, accumulated per page or per line."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def edit_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def collapse(text: str) -> str:
    return " ".join(text.split())


@dataclass
class LineAccuracy:
    """Exact match after collapsing whitespace (case-insensitive headline) and 1 - NED."""

    n: int = 0
    exact_ci: int = 0
    exact_cs: int = 0
    similarity: float = 0.0

    def add(self, predicted: str, truth: str) -> None:
        p, t = collapse(predicted), collapse(truth)
        self.n += 1
        self.exact_cs += p == t
        self.exact_ci += p.upper() == t.upper()
        self.similarity += 1 - edit_distance(p.upper(), t.upper()) / max(len(p), len(t), 1)

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"lines": self.n, "line_exact_ci": self.exact_ci / n, "line_exact_cs": self.exact_cs / n,
                "line_similarity": self.similarity / n}


@dataclass
class PageMetrics:
    """Word P/R/F1 over token multisets (micro) and page CER over reading-order text."""

    tp_ci: int = 0
    tp_cs: int = 0
    predicted: int = 0
    truth: int = 0
    edits: int = 0
    truth_chars: int = 0
    pages: int = 0
    seconds: list[float] = field(default_factory=list)

    def add(self, predicted_lines: list[str], truth_lines: list[str], predicted_text: str, truth_text: str,
            seconds: float | None = None) -> None:
        p_words = [w for line in predicted_lines for w in line.split()]
        t_words = [w for line in truth_lines for w in line.split()]
        self.tp_cs += sum((Counter(p_words) & Counter(t_words)).values())
        self.tp_ci += sum((Counter(w.upper() for w in p_words) & Counter(w.upper() for w in t_words)).values())
        self.predicted += len(p_words)
        self.truth += len(t_words)
        self.edits += edit_distance(collapse(predicted_text).upper(), collapse(truth_text).upper())
        self.truth_chars += len(collapse(truth_text))
        self.pages += 1
        if seconds is not None:
            self.seconds.append(seconds)

    def summary(self) -> dict[str, float]:
        def f1(tp: int) -> tuple[float, float, float]:
            p, r = tp / max(self.predicted, 1), tp / max(self.truth, 1)
            return p, r, 2 * p * r / max(p + r, 1e-9)

        p_ci, r_ci, f_ci = f1(self.tp_ci)
        p_cs, r_cs, f_cs = f1(self.tp_cs)
        out = {"pages": self.pages, "word_precision_ci": p_ci, "word_recall_ci": r_ci, "word_f1_ci": f_ci,
               "word_precision_cs": p_cs, "word_recall_cs": r_cs, "word_f1_cs": f_cs,
               "page_cer": self.edits / max(self.truth_chars, 1)}
        if self.seconds:
            ordered = sorted(self.seconds)
            out |= {"seconds_mean": sum(ordered) / len(ordered), "seconds_p50": ordered[len(ordered) // 2],
                    "seconds_p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}
        return out


def field_key(text: str) -> str:
    """The key-field comparison form: upper case, whitespace collapsed, ends stripped."""
    return collapse(text.upper()).strip()


@dataclass
class KeyFieldMetrics:
    """SROIE task-3 scores: per receipt and field, correct when the compared forms are equal;
    precision over non-empty predictions, recall over non-empty truths; micro and per field."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # field -> [correct, predicted, truth]

    def add(self, predicted: dict[str, str], truth: dict[str, str]) -> None:
        for name in set(predicted) | set(truth):
            guess, gold = field_key(predicted.get(name, "")), field_key(truth.get(name, ""))
            count = self.counts.setdefault(name, [0, 0, 0])
            count[0] += bool(guess) and guess == gold
            count[1] += bool(guess)
            count[2] += bool(gold)

    @staticmethod
    def _scores(correct: int, predicted: int, truth: int) -> dict[str, float]:
        precision = correct / predicted if predicted else 0.0
        recall = correct / truth if truth else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}

    def summary(self) -> dict[str, float]:
        total = [sum(c[k] for c in self.counts.values()) for k in range(3)]
        out = {f"key_{k}": round(v, 4) for k, v in self._scores(*total).items()}
        for name, count in sorted(self.counts.items()):
            out[f"key_{name}_f1"] = round(self._scores(*count)["f1"], 4)
        return out
