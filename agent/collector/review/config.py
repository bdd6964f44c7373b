"""``review:`` — how many reviewers must agree, and the label lists when samples do not carry them."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config.schema import Problems


@dataclass(frozen=True, slots=True)
class ReviewConfig:
    votes_required: int = 1  # distinct reviewers who must agree; 2 or 3 for regulated lines
    # model name -> its labels in order (digit keys 1..9). Default: the order of the sample's own
    # raw scores, which every classifier and detector sends for all of its labels.
    labels: dict[str, list[str]] = field(default_factory=dict)
    page_size: int = 50  # queue entries fetched at once
    preload: int = 4  # images the page loads ahead

    def _check(self) -> Problems:
        problems: Problems = []
        if not 1 <= self.votes_required <= 9:
            problems.append(("votes_required", "must be between 1 and 9"))
        if not 1 <= self.page_size <= 500:
            problems.append(("page_size", "must be between 1 and 500"))
        if not 0 <= self.preload <= 20:
            problems.append(("preload", "must be between 0 and 20"))
        problems += [(f"labels.{m}", "must list distinct labels") for m, ls in self.labels.items()
                     if not ls or len(set(ls)) != len(ls)]  # fmt: skip
        return problems
