"""Running one ownership check: the questions a review asked, the answers given, a verdict for
each, and the gate. The single function the CLI calls for ``ownit check``; it never prints.

Questions come from the pull request's ownit comment (its hidden state) or a review's JSON
artifact. Answers come from the PR's comments (only its author's, and those of
``ownership.answerers``) or a file. Each answer is taken with the code it was given about: when
that code changed since, the answer no longer counts (``stale``) and the question must be
answered again. Answers are screened (``screening.py``), verdicts for the same answer to the
same code are reused from the ledger, and the rest go to the grader in one call.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from agent import anchored_code, grading
from agent.answers import Answer, parse_answers, parse_override
from agent.client import Transport
from agent.config import Config, Ownership, load_config
from agent.diff import Diff, parse_diff
from agent.errors import InputError, LedgerError, ModelCallError
from agent.forge import Comment, Forge, forge_for, parse_pull_url
from agent.ledger import LedgerStore, Recorder
from agent.ledger.ownership import earlier_verdicts, record_check
from agent.ledger.records import OwnershipAnswer, OwnershipCheck
from agent.masking import mask
from agent.ownership import Check, Graded, Override, gate_passes, required
from agent.providers import choose_model
from agent.render.comment import MARKER, Previous, previous_state, state_key
from agent.result import Question, Review
from agent.review import (
    ReviewRequest,
    model_client,
    open_ledger,
    read_source,
    refuse_hosted,
    run_info,
    usable_fallbacks,
)
from agent.screening import screen
from agent.sources import DiffSource
from agent.sources.ci import CIRun
from agent.sources.host import from_forge


@dataclass(frozen=True)
class CheckRequest:
    cwd: Path
    review_path: Path | None = None  # a review's ownit-review.json
    answers_path: Path | None = None
    diff_path: Path | None = None
    base: str | None = None
    head: str | None = None
    pr_url: str | None = None
    ci: CIRun | None = None
    config_path: Path | None = None
    ledger_url: str | None = None
    model: str | None = None
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = None  # --pr N: the PR a local check is for (recorded)
    # --override REASON, by ``actor``
    override: str | None = None
    # Who runs the check (CI's actor, else the local user): the answerer of --answers, the
    # maintainer of --override.
    actor: str | None = None


@dataclass(frozen=True)
class Asked:
    """The questions to check, and what ownit itself wrote (an answer copying it is not one)."""

    questions: list[Question]
    ownit_text: list[str]
    previous: Previous | None = None
    comment: Comment | None = None


@dataclass(frozen=True)
class Given:
    answer: Answer
    by: str | None
    # The code the answer was given about (the question's fingerprint when it was written).
    code_fingerprint: str | None


def _login(name: str | None) -> str | None:
    return name.strip().removeprefix("@").lower() if name else None


def _forge(request: CheckRequest) -> Forge | None:
    if request.pr_url:
        return forge_for(parse_pull_url(request.pr_url), os.environ)
    if request.ci is not None and request.ci.for_pull_request and request.diff_path is None:
        return request.ci.forge()
    return None


def _from_review(path: Path) -> Asked:
    try:
        review = Review.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise InputError(
            f"cannot read the review {path}: {exc.strerror or exc}",
            hint="run `ownit review --out DIR` first, and pass DIR/ownit-review.json",
        ) from exc
    except ValidationError as exc:
        raise InputError(
            f"{path} is not an ownit review JSON artifact ({exc.error_count()} errors)"
        ) from None
    text = [review.summary, *review.risk_reasons, *(f.walkthrough for f in review.files)]
    text += [q.why_it_matters for q in review.questions]
    return Asked(review.questions, text)


def _from_comment(comments: list[Comment]) -> Asked:
    ours = next((c for c in comments if c.body.startswith(MARKER)), None)
    previous = previous_state(ours.body, state_key(os.environ)) if ours else None
    if ours is None or previous is None or not previous.asked:
        raise InputError(
            "this pull request has no ownit comment with questions to answer",
            hint="run `ownit review --post` for it first (the comment holds the questions)",
        )
    if previous.signed is False:
        raise InputError(
            "the questions in ownit's comment are not the ones ownit wrote: its state was "
            "edited, or written without OWNIT_STATE_KEY",
            hint="run `ownit review --post` again with the same OWNIT_STATE_KEY",
        )
    return Asked(list(previous.asked), [ours.body], previous, ours)


def _from_file(path: Path, asked: Asked, by: str | None) -> list[Given]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the answers {path}: {exc.strerror or exc}") from exc
    ids = [q.id for q in asked.questions]
    fps = {q.id: q.code_fingerprint for q in asked.questions}
    out = []
    for answer in parse_answers(text):
        qid = _resolve(answer, ids)
        if qid is not None:
            out.append(Given(replace(answer, question_id=qid), by, fps[qid]))
    return out


def _resolve(answer: Answer, ids: list[str] | tuple[str, ...]) -> str | None:
    if answer.question_id:
        matches = [i for i in ids if i.startswith(answer.question_id)]
        return matches[0] if len(matches) == 1 else None
    return ids[answer.number - 1] if 1 <= answer.number <= len(ids) else None


def _from_comments(
    comments: list[Comment], asked: Asked, author: str | None, config: Config
) -> tuple[list[Given], Override | None, list[str]]:
    """Answers from the people who may answer, the last override a maintainer wrote, and
    what did not count."""
    assert asked.previous is not None
    allowed = {a for a in (_login(author), *config.ownership.answerers) if a}
    maintainers = set(config.ownership.maintainers)
    given: list[Given] = []
    override: Override | None = None
    ignored: list[str] = []
    for comment in comments:
        if comment.body.startswith(MARKER):
            continue
        who = _login(comment.author)
        reason = parse_override(comment.body)
        if reason is not None:
            if who in maintainers and reason:
                override = Override(by=who or "", reason=reason)
            else:
                why = "gave no reason" if who in maintainers else "is not a maintainer"
                ignored.append(f"an override by @{who} did not count: {who} {why}")
        answers = parse_answers(comment.body)
        if not answers:
            continue
        if who not in allowed:
            ignored.append(
                f"{len(answers)} answer(s) by @{who} did not count: only the pull request's "
                "author (and ownership.answerers) can answer for it"
            )
            continue
        numbering = asked.previous.numbering_for(comment.id, comment.created_at)
        for answer in answers:
            qid = _resolve(answer, numbering.ids)
            if qid is not None:
                given.append(
                    Given(replace(answer, question_id=qid), who, numbering.fingerprint(qid))
                )
    return given, override, ignored


def _code(diff: Diff, question: Question) -> tuple[str | None, str]:
    return anchored_code.fingerprint(diff, question.anchor), anchored_code.excerpt(
        diff, question.anchor
    )


def _asked(request: CheckRequest, forge: Forge | None, comments: list[Comment]) -> Asked:
    if forge is not None and request.review_path is None:
        return _from_comment(comments)
    return _from_review(request.review_path or request.cwd / "ownit-review.json")


def asked_questions(request: CheckRequest) -> list[Question]:
    """The questions a check would grade answers to (``ownit questions``)."""
    forge = _forge(request)
    return _asked(request, forge, forge.comments() if forge else []).questions


async def run_check(request: CheckRequest, *, transport: Transport | None = None) -> Check:
    forge = _forge(request)
    comments = forge.comments() if forge else []
    asked = _asked(request, forge, comments)
    source = from_forge(forge, request.cwd) if forge else _source(request)
    config = load_config(repo_root=source.repo_root or request.cwd, explicit=request.config_path)
    gate = config.ownership
    if request.answers_path is not None:
        given = _from_file(request.answers_path, asked, _login(request.actor or source.author))
        override, ignored = None, list[str]()
    elif asked.previous is not None:
        given, override, ignored = _from_comments(comments, asked, source.author, config)
    else:
        raise InputError(
            "no answers to check", hint="give them in a file: ownit check --answers answers.md"
        )
    if request.override is not None:
        override = _override(request, config)

    diff = mask(parse_diff(source.data), source.title).diff
    latest = {g.answer.question_id: g for g in given}  # the last answer to each question counts
    run = run_info(
        _review_request(request),
        source,
        config,
        model_name=None,
        prompt_version=grading.version(),
    )
    store, ledger_error = open_ledger(request.ledger_url)

    graded: list[Graded] = []
    to_grade: list[tuple[int, grading.ToGrade, str | None]] = []
    for q in asked.questions:
        now_fp, code = _code(diff, q)
        g = latest.get(q.id)
        if g is None:
            graded.append(Graded(question=q, status="unanswered"))
            continue
        base = Graded(
            question=q,
            status="stale",
            answered_by=g.by,
            answer_fingerprint=g.answer.fingerprint,
        )
        # Fingerprints a review before them did not record cannot say the code changed.
        given_for = {g.code_fingerprint, q.code_fingerprint} - {None}
        if any(fp != now_fp for fp in given_for):
            graded.append(
                base.model_copy(
                    update={"feedback": "The code this asks about changed: answer it again."}
                )
            )
            continue
        screened = screen(g.answer.text, q.question, code, asked.ownit_text)
        if screened is not None:
            graded.append(
                base.model_copy(
                    update={
                        "status": "not_shown",
                        "screen": screened.reason,
                        "feedback": screened.feedback,
                    }
                )
            )
            continue
        graded.append(base.model_copy(update={"status": "ungraded"}))
        # An answer can hold a credential pasted by mistake: masked like the diff before it
        # leaves (the fingerprint stays the answer's own).
        text = mask(Diff(()), g.answer.text).title or ""
        to_grade.append((len(graded) - 1, grading.ToGrade(q, text, code), now_fp))

    problems: list[str] = []
    notes: list[str] = []
    calls = []
    model_name = None
    if to_grade:
        keys = [(t.question.id, fp, graded[i].answer_fingerprint or "") for i, t, fp in to_grade]
        reused = _reuse(store, keys, notes)
        fresh = []
        for (i, item, _), key in zip(to_grade, keys, strict=True):
            if key in reused:
                status, feedback = reused[key]
                graded[i] = graded[i].model_copy(
                    update={"status": status, "feedback": feedback, "reused": True}
                )
            else:
                fresh.append((i, item))
        if fresh:
            model = choose_model(config, request.model or gate.model, require_usable=True)
            refuse_hosted(config, model)  # the grader sees code, as a reviewer does
            model_name = model.name
            run = run.model_copy(update={"model_name": model.name})
            recorder = Recorder(run, store, error=ledger_error)
            fallbacks, fallback_notes = usable_fallbacks(config, config.fallback_chain(model.name))
            notes += fallback_notes
            client = model_client(config, [model, *fallbacks], run, recorder, transport)
            try:
                verdicts = await grading.grade(
                    client, [t for _, t in fresh], source.title or "", source.repo or ""
                )
                for (i, _), v in zip(fresh, verdicts, strict=True):
                    graded[i] = graded[i].model_copy(
                        update={"status": v.verdict, "feedback": v.feedback}
                    )
            except ModelCallError as exc:
                problems.append(f"{len(fresh)} answer(s) could not be graded: {exc.message}")
            finally:
                recorder.finish(status="incomplete" if problems else "complete")
                recorder.close()
            calls = recorder.rows
            if recorder.error is not None:
                problems.append(
                    f"the ledger could not record the grading: {recorder.error.message}"
                )

    passed = override is not None or gate_passes(graded, gate)
    check = Check(
        run_id=run.id,
        repo=run.repo,
        pr_number=run.pr_number,
        head_sha=run.head_sha,
        author=run.author,
        team=run.team,
        require=gate.require,
        pass_on=gate.pass_on,
        graded=graded,
        passed=passed,
        override=override,
        ignored=ignored,
        problems=problems,
        notes=notes,
        model_name=model_name,
        cost_usd=sum(c.cost_usd or 0.0 for c in calls),
        calls=calls,
    )
    if store is not None:
        try:
            _record(store, check, gate)
        except LedgerError as exc:
            check = check.model_copy(
                update={"problems": [*check.problems, f"the check was not recorded: {exc.message}"]}
            )
        finally:
            store.close()
    elif ledger_error is not None:
        check.problems.append(f"the check was not recorded: {ledger_error.message}")
    return check


def _override(request: CheckRequest, config: Config) -> Override:
    who = _login(request.actor)
    maintainers = config.ownership.maintainers
    if not request.override or not request.override.strip():
        raise InputError("--override needs a reason", hint='--override "hotfix for INC-123"')
    if maintainers and who not in maintainers:
        raise InputError(
            f"{who or 'this user'} may not override the ownership gate",
            hint="only the logins under ownership.maintainers in providers.yaml can",
        )
    return Override(by=who or "unknown", reason=request.override.strip())


def _reuse(
    store: LedgerStore | None, keys: list[tuple[str, str | None, str]], notes: list[str]
) -> dict[tuple[str, str | None, str], tuple[str, str]]:
    if store is None:
        return {}
    try:
        return earlier_verdicts(store, keys, grading.version())
    except LedgerError as exc:
        notes.append(f"earlier verdicts could not be read ({exc.message}); every answer is graded")
        return {}


def _record(store: LedgerStore, check: Check, gate: Ownership) -> None:
    row = OwnershipCheck(
        id=check.run_id,
        created_at=datetime.now(UTC),
        team=check.team,
        repo=check.repo,
        pr_number=check.pr_number,
        head_sha=check.head_sha,
        author=check.author,
        require=check.require,
        pass_on=check.pass_on,
        questions=len(check.graded),
        required=sum(required(g.question, gate.require) for g in check.graded),
        shown=check.shown,
        passed=check.passed,
        complete=check.complete,
        override_by=check.override.by if check.override else None,
        override_reason=check.override.reason if check.override else None,
        model_name=check.model_name,
        cost_usd=check.cost_usd,
    )
    version = grading.version()
    answers = [
        OwnershipAnswer(
            check_id=check.run_id,
            question_id=g.question.id,
            rank=g.question.rank,
            priority=g.question.priority,
            category=g.question.category,
            question_fingerprint=question_fingerprint(g.question),
            code_fingerprint=g.question.code_fingerprint,
            answer_fingerprint=g.answer_fingerprint,
            answered_by=g.answered_by,
            status=g.status,
            screen=g.screen,
            feedback=g.feedback or None,
            reused=g.reused,
            grade_version=version,
        )
        for g in check.graded
    ]
    record_check(store, row, answers)


def _review_request(request: CheckRequest) -> ReviewRequest:
    return ReviewRequest(
        cwd=request.cwd,
        diff_path=request.diff_path,
        base=request.base,
        head=request.head,
        team=request.team,
        repo=request.repo,
        pr_number=request.pr_number,
        pr_url=request.pr_url,
        ci=request.ci,
    )


def _source(request: CheckRequest) -> DiffSource:
    return read_source(_review_request(request))


def question_fingerprint(question: Question) -> str:
    words = " ".join(question.question.lower().split())
    return hashlib.sha256(words.encode()).hexdigest()[:16]
