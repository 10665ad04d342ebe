"""Pabulib (`.pb`, pabulib.org): the open format of participatory budgeting instances, read and written with
pabutools' parser and writer, so that a round can be checked by anyone with their own tools.

A round is written as META (the round, its budget in cents, `vote_type` approval, `rule` equalshares/add1), PROJECTS
(each candidate with its cost in cents, its number of approvals and whether it was `selected`) and VOTES (each
counted ballot under a pseudonymous voter number, never a resident id). A file read for a check must be an approval
instance with whole-unit costs and budget; what it holds is refused field by field, never half read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pabutools.election import ApprovalBallot, ApprovalProfile, Instance, Project
from pabutools.election.pabulib import election_as_pabulib_string, parse_pabulib_from_string

from buurtkracht_contracts.refusals import InvalidInput

from .equal_shares import PABULIB_RULE, Candidate, Outcome

MOST_PROJECTS = 300
MOST_VOTES = 20_000  # a check is computed while the caller waits; the completion reruns the method per step
_PROJECTS = uuid.UUID("6b1c3a52-4a8e-4f5e-9a57-2f6d0c0f16b1")  # the namespace of the ids given to a file's projects


@dataclass(frozen=True)
class Vote:
    """A counted ballot as published: a voter number, and the initiatives it approves."""

    voter: int
    initiative_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class PabulibInstance:
    """A Pabulib approval instance as read: its budget, its projects as candidates (ids derived from the project
    ids, see `project_key`), the project id of each, and the approvals of each vote."""

    description: str
    budget: int
    candidates: list[Candidate]
    project_ids: dict[uuid.UUID, str]
    ballots: list[list[uuid.UUID]]
    published_winners: list[str] | None


def _text(value: str) -> str:
    """A value as a field of the format: no separator, no line break."""
    return re.sub(r"[;\r\n]+", " ", value).strip()


def write(
    *,
    round_id: uuid.UUID,
    name: str,
    area_code: str,
    opens_at: str,
    closes_at: str,
    outcome: Outcome,
    votes: Sequence[Vote],
) -> str:
    """The round as a Pabulib file, written by pabutools' `election_as_pabulib_string`."""
    projects = {r.initiative_id: Project(str(r.initiative_id), r.cost_cents) for r in outcome.results}
    instance = Instance(projects.values(), budget_limit=outcome.budget_cents)
    instance.meta.update(
        {
            "description": _text(f"Buurtkracht Equal Shares round {name}"),
            "country": "Netherlands",
            "unit": _text(area_code),
            "instance": str(round_id),
            "rule": PABULIB_RULE,
            "date_begin": opens_at,
            "date_end": closes_at,
            "currency": "EUR cents",
        }
    )
    for result in outcome.results:
        instance.project_meta[projects[result.initiative_id]] = {
            "name": _text(result.title),
            "votes": str(result.supporters),
            "selected": "1" if result.funded else "0",
        }
    ballots = []
    for vote in votes:
        ballot = ApprovalBallot({projects[i] for i in vote.initiative_ids if i in projects})
        ballot.meta = {"voter_id": str(vote.voter)}
        ballots.append(ballot)
    return election_as_pabulib_string(instance, ApprovalProfile(ballots, instance=instance))


def project_key(project_id: str) -> uuid.UUID:
    """The id a file's project is computed under: derived from its project id, the same every time."""
    return uuid.uuid5(_PROJECTS, project_id)


def read(text: str) -> PabulibInstance:
    """An approval instance from a Pabulib file; InvalidInput naming what is wrong (`file` for the format itself)."""
    try:
        instance, profile = parse_pabulib_from_string(text)
    except Exception as error:  # whatever a file that is no Pabulib file makes the parser raise
        raise InvalidInput(
            f"not a Pabulib file this service can read: {type(error).__name__} {error}", "file"
        ) from None
    vote_type = instance.meta.get("vote_type")
    if vote_type not in ("approval", "choose-1"):
        raise InvalidInput(f"only approval instances are computed; this one is {vote_type}", "vote_type")
    budget = instance.budget_limit
    if budget != int(budget) or budget <= 0:
        raise InvalidInput("the budget must be a positive whole number", "budget")
    if not 0 < len(instance) <= MOST_PROJECTS:
        raise InvalidInput(f"an instance has 1 to {MOST_PROJECTS} projects", "projects")
    if len(profile) > MOST_VOTES:
        raise InvalidInput(f"an instance has at most {MOST_VOTES} votes here", "votes")
    candidates, names = [], {}
    for project in sorted(instance, key=lambda p: p.name):
        if project.cost != int(project.cost) or project.cost <= 0:
            raise InvalidInput(f"project {project.name}: its cost must be a positive whole number", "cost")
        key = project_key(project.name)
        names[key] = project.name
        title = instance.project_meta.get(project, {}).get("name", project.name)
        candidates.append(Candidate(key, str(title), int(project.cost)))
    ballots = [[project_key(project.name) for project in ballot] for ballot in profile]
    selected = [p.name for p in instance if instance.project_meta.get(p, {}).get("selected") in ("0", "1")]
    winners = (
        sorted(p.name for p in instance if instance.project_meta[p].get("selected") == "1")
        if len(selected) == len(instance)
        else None
    )
    description = str(instance.meta.get("description", ""))
    return PabulibInstance(description, int(budget), candidates, names, ballots, winners)
