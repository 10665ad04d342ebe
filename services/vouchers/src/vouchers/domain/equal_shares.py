"""The Method of Equal Shares: which approved initiatives an Equal Shares round funds, and why the others were not.

The rule is pabutools' `method_of_equal_shares` (pabutools 1.2.3) as the cities that used it ran it (Wieliczka's
Green Million and Aarau's Stadtidee, 2023; equalshares.net, "Completion"):
- every resident whose ballot approves at least one candidate is a voter; the round's budget is divided equally
  among the voters (a ballot that approves nothing is no vote and takes no share);
- a voter's satisfaction with an approved initiative is its cost ("cost utilities", equalshares.net's default for
  approval ballots), and an initiative costs its approved amount;
- completion "Add1": the voters' share is raised by €1 (100 cents) at a time, and the method is run again, until
  the outcome is exhaustive (no further initiative fits in the budget) or the next share would spend more than
  the budget (then the outcome before it stands) — pabutools' `voter_budget_increment=100`;
- ties (equal effective vote counts) go to the initiative that costs least, then to the one with more approvals
  (equalshares.net's procedure), then — where that procedure draws lots — to the lowest initiative id, so the
  outcome is deterministic: a pabutools `TieBreakingRule` on (cost, -approvals, id);
- arithmetic is exact (pabutools' gmpy2 fractions): no rounding decides anything.

Invariants: what is funded costs at most the budget; each initiative is funded at most once and at exactly its cost;
the same candidates and ballots always give the same outcome. Identical ballots are counted as one voter with a
multiplicity (pabutools' multiprofile), which gives the same outcome as counting them one by one.

The explanation of an initiative not funded comes from pabutools' analysis of that run
(`pabutools.analysis.mesanalytics.calculate_project_loss`): how much money its supporters still had of their shares
when the method last considered it — less than its cost — and what they had spent on initiatives funded before it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pabutools.analysis.mesanalytics import calculate_project_loss
from pabutools.election import (
    ApprovalBallot,
    ApprovalMultiProfile,
    FrozenApprovalBallot,
    Instance,
    Project,
    SatisfactionMeasure,
    SatisfactionMultiProfile,
)
from pabutools.rules import method_of_equal_shares
from pabutools.rules.mes.mes_details import MESAllocationDetails
from pabutools.tiebreaking import TieBreakingRule

SHARE_STEP_CENTS = 100  # "Add1": the voters' share rises by one euro per step of the completion
METHOD = (
    "Method of Equal Shares (pabutools 1.2.3 method_of_equal_shares): approval ballots, cost satisfaction, "
    "Add1 completion (the voter's share raised by 100 cents a step), ties to the lower cost, then the more "
    "approvals, then the lower initiative id"
)
PABULIB_RULE = "equalshares/add1"


class Reason:
    """Why an initiative was not funded."""

    NO_SUPPORTERS = "no_supporters"  # no ballot approved it
    OVER_BUDGET = "over_budget"  # it costs more than the whole budget
    SUPPORTERS_SHORT = "supporters_short"  # its supporters' money left was less than its cost


@dataclass(frozen=True)
class Candidate:
    """An approved initiative on the ballot, at its approved amount."""

    initiative_id: uuid.UUID
    title: str
    cost_cents: int


@dataclass(frozen=True)
class SpentOn:
    """What the supporters of an initiative spent, of their shares, on an initiative funded before it was
    considered (cents, rounded down)."""

    initiative_id: uuid.UUID
    cents: int


@dataclass(frozen=True)
class Result:
    """One candidate's outcome. `position` is the order in which the method funded it (1 first); for one not
    funded, `reason`, and `supporters_money_cents`: what its supporters had left of their shares when it was last
    considered (rounded down), with `spent_on` what they had spent before on funded initiatives, most first."""

    initiative_id: uuid.UUID
    title: str
    cost_cents: int
    supporters: int
    funded: bool
    position: int | None = None
    reason: str | None = None
    supporters_money_cents: int | None = None
    spent_on: tuple[SpentOn, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """The outcome of a round: `voters` ballots that approve a candidate counted, each with a share of `share_cents`
    (exact, after the completion; a fraction of a cent possibly), the funded initiatives in the order the method
    funded them, then the others, most supporters first."""

    budget_cents: int
    voters: int
    share_cents: Fraction
    results: tuple[Result, ...]
    method: str = METHOD

    @property
    def funded(self) -> list[Result]:
        return [result for result in self.results if result.funded]

    @property
    def funded_cents(self) -> int:
        return sum(result.cost_cents for result in self.funded)


class _CostApproval(SatisfactionMeasure):  # type: ignore[misc]
    """Cost satisfaction of an approval ballot (pabutools' `Cost_Sat`), answered from a set of project names: the
    method asks it once per voter and project, and `Cost_Sat` hashes pabutools' projects in Python for each."""

    def __init__(self, instance: Instance, profile: Any, ballot: ApprovalBallot) -> None:
        super().__init__(instance, profile, ballot)
        self.names = frozenset(project.name for project in ballot)

    def sat_project(self, project: Project) -> int:
        return project.cost if project.name in self.names else 0

    def sat(self, projects: Collection[Project]) -> int:
        return sum(self.sat_project(project) for project in projects)


def compute(
    budget_cents: int,
    candidates: Sequence[Candidate],
    ballots: Iterable[Iterable[uuid.UUID]],
    share_step: int = SHARE_STEP_CENTS,
) -> Outcome:
    """The outcome of an Equal Shares round with `budget_cents` over `candidates`; each ballot names the candidates
    a voter approves (approvals of anything else and repeats are ignored). `share_step` is the Add1 step: a euro in
    cents for rounds, one unit for a Pabulib file, whose amounts are whole units of its currency."""
    if budget_cents <= 0:
        raise ValueError("the budget must be positive")
    by_id = {candidate.initiative_id: candidate for candidate in candidates}
    projects = {c.initiative_id: Project(str(c.initiative_id), c.cost_cents) for c in candidates}
    instance = Instance(projects.values(), budget_limit=budget_cents)
    counted: Counter[frozenset[uuid.UUID]] = Counter()
    for ballot in ballots:
        approved = frozenset(initiative_id for initiative_id in ballot if initiative_id in by_id)
        if approved:
            counted[approved] += 1
    approvals: Counter[uuid.UUID] = Counter()
    for approved, times in counted.items():
        for initiative_id in approved:
            approvals[initiative_id] += times
    voters = sum(counted.values())
    if not voters:
        return Outcome(budget_cents, 0, Fraction(0), _results(budget_cents, candidates, approvals, [], {}))

    profile = ApprovalMultiProfile(instance=instance)
    for approved in sorted(counted, key=lambda ids: sorted(map(str, ids))):  # one order whatever the input's
        profile[FrozenApprovalBallot({projects[initiative_id] for initiative_id in approved})] = counted[approved]
    names = {str(initiative_id): initiative_id for initiative_id in projects}
    tie_breaking = TieBreakingRule(
        lambda _i, _p, project: (project.cost, -approvals[names[project.name]], project.name)
    )
    allocation = method_of_equal_shares(
        instance,
        profile,
        sat_profile=SatisfactionMultiProfile(instance=instance, multiprofile=profile, sat_class=_CostApproval),
        tie_breaking=tie_breaking,
        voter_budget_increment=share_step,
        analytics=True,
    )
    details: MESAllocationDetails = allocation.details
    funded = [names[project.name] for project in details.get_all_selected_projects() if project is not None]
    share = Fraction(str(details.iterations[0].voters_budget[0])) if details.iterations else Fraction(0)
    return Outcome(
        budget_cents, voters, share, _results(budget_cents, candidates, approvals, funded, _losses(details, names))
    )


def _losses(details: MESAllocationDetails, names: dict[str, uuid.UUID]) -> dict[uuid.UUID, tuple[int, list[SpentOn]]]:
    """Per initiative not funded: its supporters' money left when the method last considered it, and what they had
    spent on funded initiatives before, from pabutools' `calculate_project_loss`. The method's last pass selects
    nothing and records no budgets after a selection, which `calculate_project_loss` cannot read; without it, the
    pass before — the last selection — reports every project still in the running with the budgets the method ended
    with, which is what the last pass found too little."""
    if not details.iterations:
        return {}
    trimmed = MESAllocationDetails(details.voter_multiplicity)
    trimmed.iterations = [iteration for iteration in details.iterations if iteration.selected_project is not None]
    losses: dict[uuid.UUID, tuple[int, list[SpentOn]]] = {}
    for loss in calculate_project_loss(trimmed):
        spent = sorted(
            (SpentOn(names[project.name], int(cents)) for project, cents in loss.budget_lost.items() if cents > 0),
            key=lambda s: (-s.cents, str(s.initiative_id)),
        )
        losses[names[loss.name]] = (int(loss.supporters_budget), spent)  # the last time it was considered counts
    if not trimmed.iterations:  # nothing was funded: every supporter still had their whole share
        share = details.iterations[0].voters_budget
        multiplicity = details.voter_multiplicity
        for project_detail in details.iterations[0]:
            money = sum(share[i] * multiplicity[i] for i in project_detail.project.supporter_indices)
            losses[names[project_detail.project.name]] = (int(money), [])
    return losses


def _results(
    budget_cents: int,
    candidates: Sequence[Candidate],
    approvals: Counter[uuid.UUID],
    funded: list[uuid.UUID],
    losses: dict[uuid.UUID, tuple[int, list[SpentOn]]],
) -> tuple[Result, ...]:
    by_id = {candidate.initiative_id: candidate for candidate in candidates}
    results = [
        Result(i, by_id[i].title, by_id[i].cost_cents, approvals[i], True, position)
        for position, i in enumerate(funded, 1)
    ]
    others = sorted(
        (c for c in candidates if c.initiative_id not in set(funded)),
        key=lambda c: (-approvals[c.initiative_id], c.cost_cents, str(c.initiative_id)),
    )
    for candidate in others:
        supporters = approvals[candidate.initiative_id]
        money, spent = losses.get(candidate.initiative_id, (0, []))
        if not supporters:
            reason, money_or_none = Reason.NO_SUPPORTERS, None
        elif candidate.cost_cents > budget_cents:
            reason, money_or_none = Reason.OVER_BUDGET, money
        else:
            reason, money_or_none = Reason.SUPPORTERS_SHORT, money
        results.append(
            Result(
                candidate.initiative_id,
                candidate.title,
                candidate.cost_cents,
                supporters,
                False,
                reason=reason,
                supporters_money_cents=money_or_none,
                spent_on=tuple(spent),
            )
        )
    return tuple(results)
