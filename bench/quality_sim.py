"""Benchmark: label accuracy and human actions per item, with a simulated workforce (issue #10).

    .venv/bin/python bench/quality_sim.py                # 2,000 items, both datasets
    .venv/bin/python bench/quality_sim.py --items 300 --datasets topics10 --configs k3-ds

For each dataset and configuration a fresh project is made in the bench
database and its items imported through the real import service (a share
--gold-items of extra items with known answers imported as gold). 40 simulated
annotators (bench/_quality_data.py: 10 at 0.92 accuracy, 15 at 0.85, 10 at
0.72, 5 spammers at 0.40) then work through the real services, round by round
in a seeded random order: each annotator who still has regular work they can
take calls annotation.services.assignment_lease then annotation_submit, so the
production lease rules apply (overlap, gold ratio, skill tier, one lease per
item and annotator). Completed items are decided by the app (majority vote,
review when disputed, below the agreement threshold or sampled at the review
rate). Simulated reviewers (0.95 accuracy: they accept a right result and
correct, or reject, a wrong one with probability 0.95) take items with
annotation.services.review_lease_take and call review_submit.
With "ds" the configuration then runs annotation.services.project_results_infer
(Dawid-Skene, as Celery beat does for active projects) and the reviewers drain
whatever it sent to review; the table shows the row before and after.

Accuracy is the share of regular items whose final result (ItemResult) matches
the truth, with a Wilson 95 % interval; an item without a result counts as
wrong. Human actions per item = (annotations on regular items, rejected ones
included + annotations on gold items + reviews) / regular items. Beside each
dataset: a fixed-overlap-5 majority vote over the same simulated answers
(5 distinct annotators per item from a seeded draw; no database), and
Dawid-Skene over those same answers (annotation.agreement.dawid_skene, offline).

Configurations (--configs, comma-separated; tokens joined by "-"):
  k<N> overlap (1-5)  g<R> project gold_ratio  r<R> project review_rate  ds Dawid-Skene at the end
  e.g. k1-r0.1-ds,k3-ds,k3-g0.1-ds,k5-ds (the default)

The run exits 1 if a service raised (the row says which exception; the
traceback goes to stderr) and carries on with the next configuration.

--model builtin puts the built-in model in the loop (see ModelHook): it
pre-labels every item with compute/builtin after the import, and
compute.retraining fine-tunes it on the approved labels every --retrain-every
approvals and pre-labels the open items again with the new model. Its calls are
not human actions: they have their own column.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import traceback
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _quality_data as qd

DEFAULT_CONFIGS = "k1-r0.1-ds,k3-ds,k3-g0.1-ds,k5-ds"


# --- configurations --------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    name: str
    overlap: int
    gold_ratio: Decimal
    review_rate: Decimal
    ds: bool
    # The quality engine: adaptive decisions to `target` (None: fixed overlap),
    # at most `cap` annotations, quarantine under `bar` (0: off).
    target: Decimal | None = None
    cap: int = 5
    bar: Decimal = Decimal(0)


def config_parse(text: str) -> Config:
    overlap, gold, review, ds = 1, Decimal(0), Decimal(0), False
    target, cap, bar = None, 5, Decimal(0)
    for token in text.split("-"):
        if token == "ds":  # noqa: S105
            ds = True
        elif token[:1] == "k" and token[1:].isdigit():
            overlap = int(token[1:])
        elif token[:1] == "c" and token[1:].isdigit():
            cap = int(token[1:])
        elif token[:1] in ("a", "q"):
            try:
                value = Decimal(token[1:])
            except ArithmeticError:
                raise SystemExit(f"bad configuration token {token!r} in {text!r}") from None
            if not 0 <= value < 1:
                raise SystemExit(f"{token!r}: a share between 0 and 1")
            if token[0] == "a":
                target = value
            else:
                bar = value
        elif token[:1] in ("g", "r"):
            try:
                value = Decimal(token[1:])
            except ArithmeticError:
                raise SystemExit(f"bad configuration token {token!r} in {text!r}") from None
            if not 0 <= value <= 1:
                raise SystemExit(f"{token!r}: a share between 0 and 1")
            if token[0] == "g":
                gold = value
            else:
                review = value
        else:
            raise SystemExit(
                f"bad token {token!r} in {text!r} (k<N>, g<R>, r<R>, ds, a<T>, c<N>, q<B>)"
            )
    if not 1 <= overlap <= 5:
        raise SystemExit(f"{text!r}: overlap k must be 1-5")
    if target is not None and not Decimal("0.5") <= target <= Decimal("0.999"):
        raise SystemExit(f"{text!r}: the adaptive target a must be 0.5-0.999")
    return Config(text, overlap, gold, review, ds, target, cap, bar)


# --- statistics ------------------------------------------------------------------


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return centre - half, centre + half


def row_for(
    name: str,
    items: int,
    correct: int,
    ann: float,
    gold: float,
    rev: float,
    wall,
    note,
    model_calls: int | None = None,
):
    low, high = wilson(correct, items)
    return [
        name,
        f"{items:,}",
        f"{correct / items:.4f}" if items else "-",
        f"{low:.4f}-{high:.4f}",
        f"{ann / items:.3f}",
        f"{gold / items:.3f}",
        f"{rev / items:.3f}",
        f"{(ann + gold + rev) / items:.3f}",
        "-" if model_calls is None else f"{model_calls / items:.3f}",
        "-" if wall is None else f"{wall:.1f}",
        note,
    ]


HEADERS = [
    "config",
    "items",
    "accuracy",
    "95% CI",
    "annotations/item",
    "gold/item",
    "reviews/item",
    "human actions/item",
    "model calls/item",
    "wall s",
    "notes",
]


# --- offline baselines from the same simulated answers ---------------------------


def baselines(ds: qd.Dataset, workers: list[qd.Worker], seed: int) -> list[list]:
    from annotation import agreement

    triples, majority_correct = [], 0
    for external_id, _, truth in ds.regular:
        rng = random.Random(f"baseline:{seed}:{external_id}")
        votes = []
        for worker in rng.sample(workers, 5):
            label = qd.worker_answer(seed, worker, external_id, truth, ds.classes, ds.neighbour)
            votes.append(label)
            triples.append((external_id, worker.index, label))
        winner, _ = agreement.majority_vote(votes)
        majority_correct += winner == truth
    inferred = agreement.dawid_skene(triples, classes=ds.classes)
    ds_correct = sum(inferred.labels[e] == t for e, _, t in ds.regular)
    n = len(ds.regular)
    return [
        row_for("baseline k5 majority (offline)", n, majority_correct, 5 * n, 0, 0, None, ""),
        row_for("baseline k5 Dawid-Skene (offline)", n, ds_correct, 5 * n, 0, 0, None, ""),
    ]


# --- the model in the loop ---------------------------------------------------------


class ModelHook:
    """The built-in model in the loop (--model builtin); a no-op with --model none.

    prepare(): after the import, before any annotation: starts compute/builtin
        as a subprocess on a free port (its data dir under the bench VAR_DIR),
        registers it as a backend of the project's client through
        compute.services.backend_save, sets the project's retrain_every and
        pre-labels every open item, gold included, with tokenworks-base
        (compute.services.prelabel_run_start). Celery runs eagerly in this
        process, so the run's dispatch and chunk tasks call
        prelabel_chunk_process synchronously, over real HTTP, as the workers would.
    after_round(): calls compute.retraining.project_model_retrain_if_due, and
        when it started one drives what beat would: finetune_run_poll until the
        job is done (the evaluation runs on commit), then model_retrain_advance,
        which pre-labels the open items (gold included) with the new model.
    Model calls are metered as compute.InferenceCall rows (pre-labeling and
    evaluation alike) and reported per item in their own column: they are not
    human actions.
    """

    BASE_MODEL = "tokenworks-base"

    def __init__(self, args=None, truth: dict[str, str] | None = None):
        self.enabled = getattr(args, "model", "none") == "builtin"
        self.truth = truth or {}
        self.retrain_every = getattr(args, "retrain_every", 0)
        self.server = None
        self.backend = None
        self.retrains: list[dict] = []

    def prepare(self, project) -> None:
        if not self.enabled:
            return
        import socket
        import subprocess

        import httpx

        from annotation import services as annotation_services
        from compute import retraining
        from compute import services as compute_services
        from config.celery_app import app
        from tenants.models import Membership, User

        app.conf.task_always_eager = True  # chunks and fine-tune steps run here, synchronously
        app.conf.task_eager_propagates = True
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data_dir = Path(_common.bench_env()["VAR_DIR"]) / "bench" / "builtin" / f"p{project.pk}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = _common.bench_env()
        env["PYTHONPATH"] = str(_common.REPO)
        command = [sys.executable, "-m", "compute.builtin", "serve", "--port", str(port)]
        command += ["--data-dir", str(data_dir), "--log-level", "warning"]
        self.server = subprocess.Popen(command, cwd=_common.REPO, env=env)
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/models", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the built-in model server did not start") from None
                time.sleep(0.2)
        manager = User.objects.create(username=f"{project.name[:100]}-ml".replace(" ", "-"))
        Membership.objects.create(
            user=manager, organization=project.organization, role=Membership.Role.ADMIN
        )
        self.manager = manager
        self.backend = compute_services.backend_save(
            user=manager,
            organization=project.organization,
            name=f"builtin {port}",
            kind="builtin",
            base_url=url,
            models_served=[self.BASE_MODEL],
            max_concurrency=8,
        )
        annotation_services.project_update(
            project=project, updated_by=project.created_by, retrain_every=self.retrain_every
        )
        started = time.perf_counter()
        run = compute_services.prelabel_run_start(
            project=project,
            created_by=project.created_by,
            model=self.BASE_MODEL,
            backend=self.backend,
            item_filter=retraining.OPEN_ITEMS,
        )
        run.refresh_from_db()
        print(
            f"  model: pre-labeled {run.done_items:,} of {run.total_items:,} items with "
            f"{self.BASE_MODEL} ({run.status}, {time.perf_counter() - started:.1f} s); "
            f"{self.suggestions_scored(project)}",
            flush=True,
        )

    def suggestions_scored(self, project) -> str:
        """The model's suggestions on the open items against the truth, regular and gold."""
        from annotation.models import Item

        tally = {False: [0, 0], True: [0, 0]}
        for external_id, is_gold, metadata in Item.objects.filter(
            project=project, status=Item.Status.OPEN
        ).values_list("external_id", "is_gold", "metadata"):
            answer = ((metadata or {}).get("suggestion") or {}).get("answer") or {}
            tally[is_gold][0] += answer.get("label") == self.truth.get(external_id)
            tally[is_gold][1] += 1
        return ", ".join(
            f"{kind} {right / n:.3f} of {n:,}"
            for kind, (right, n) in (("open items right", tally[False]), ("gold", tally[True]))
            if n
        )

    def after_round(self, project, round_no: int) -> bool:
        """Retrain when due; whether a new model now predicts the open items."""
        if not self.enabled:
            return False
        from compute import retraining
        from compute.finetuning import finetune_run_poll
        from compute.models import FineTuneRun, ModelRetrain

        started = time.perf_counter()
        retrain = retraining.project_model_retrain_if_due(project=project)
        if retrain is None:
            return False
        if retrain.status == ModelRetrain.Status.TRAINING:
            run = retrain.finetune_run
            while run.status not in (
                FineTuneRun.Status.SUCCEEDED,
                FineTuneRun.Status.FAILED,
                FineTuneRun.Status.CANCELLED,
            ):
                time.sleep(0.2)
                run = finetune_run_poll(run_id=run.pk)  # evaluates on commit (eagerly)
                run.refresh_from_db()
            trained = time.perf_counter()
            retrain = retraining.model_retrain_advance(retrain_id=retrain.pk)  # pre-labels
            retrain = retraining.model_retrain_advance(retrain_id=retrain.pk)
        retrain.refresh_from_db()
        run = retrain.finetune_run
        evaluation = run.evaluation if run else {}
        record = {
            "round": round_no,
            "approved": retrain.approved_results,
            "status": retrain.status,
            "train": retrain.dataset.train_count if retrain.dataset else 0,
            "held_out": evaluation.get("items", 0),
            "accuracy": evaluation.get("accuracy"),
            "model": run.fine_tuned_model if run else "",
            "seconds": time.perf_counter() - started,
            "train_seconds": trained - started if run else 0.0,
            "error": retrain.error,
        }
        self.retrains.append(record)
        accuracy = "-" if record["accuracy"] is None else f"{record['accuracy']:.4f}"
        print(
            f"  model: retrain {len(self.retrains)} in round {round_no} at "
            f"{record['approved']:,} approved: {record['status']}, trained on "
            f"{record['train']:,}, held-out accuracy {accuracy} on {record['held_out']:,} "
            f"({record['train_seconds']:.1f} s training and evaluating, "
            f"{record['seconds']:.1f} s with re-pre-labeling)"
            + (f"; {record['error']}" if record["error"] else "")
            + f"; suggestions now: {self.suggestions_scored(project)}",
            file=sys.stderr,
            flush=True,
        )
        return True

    def calls(self, project) -> int | None:
        """Model calls metered for the project (pre-labeling and evaluation), or None."""
        if not self.enabled:
            return None
        from compute.models import InferenceCall

        return InferenceCall.objects.filter(project=project).count()

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(10)
            self.server = None

    def cleanup(self, project) -> None:
        """Stop the server and delete the compute rows (before the fixture's cleanup)."""
        self.stop_server()
        if not self.enabled:
            return
        from django.db import connection, transaction

        from annotation.models import DatasetVersion

        for dataset in DatasetVersion.objects.filter(project=project):
            dataset.train_file.delete(save=False)
            if dataset.validation_file:
                dataset.validation_file.delete(save=False)
        with transaction.atomic(), connection.cursor() as c:
            c.execute("SET LOCAL session_replication_role = replica")  # the append-only ledger
            for sql in (
                "DELETE FROM compute_modelretrain WHERE project_id = %s",
                "DELETE FROM compute_inferencecall WHERE project_id = %s",
                "DELETE FROM compute_prediction WHERE project_id = %s",
                "DELETE FROM compute_finetunerun WHERE project_id = %s",
                "DELETE FROM compute_prelabelrun WHERE project_id = %s",
                "DELETE FROM compute_prompttemplate WHERE project_id = %s",
                "DELETE FROM annotation_datasetversion WHERE project_id = %s",
            ):
                c.execute(sql, [project.pk])
            if self.backend is not None:
                c.execute("DELETE FROM compute_backend WHERE id = %s", [self.backend.pk])
                c.execute("DELETE FROM tenants_membership WHERE user_id = %s", [self.manager.pk])
                c.execute("DELETE FROM tenants_user WHERE id = %s", [self.manager.pk])


# --- the simulation through the services ----------------------------------------


class Stuck(RuntimeError):
    pass


class Simulation:
    def __init__(self, ds: qd.Dataset, cfg: Config, args, workers: list[qd.Worker]):
        self.ds, self.cfg, self.args, self.workers = ds, cfg, args, workers
        self.rng = random.Random(f"order:{args.seed}:{ds.name}:{cfg.name}")
        self.reviews_of: dict[str, int] = {}
        self.group_of: dict[int, str] = {}
        self.hook = ModelHook(args, truth=ds.truth)
        self.submits = 0
        self.t0 = time.perf_counter()

    # set-up

    def setup(self) -> None:
        from django.core.files import File

        from annotation import imports, services
        from annotation.models import ImportJob
        from tenants.models import Membership, User

        cfg, ds = self.cfg, self.ds
        self.fixture = _common.Fixture(f"q-{ds.name}-{cfg.name}")
        owner = self.fixture.owner
        engine = {"quarantine_below": cfg.bar}
        if cfg.target is not None:
            engine.update(
                decision="adaptive", target_confidence=cfg.target, max_annotations=cfg.cap
            )
        self.project = services.project_update(
            project=self.fixture.project,
            updated_by=owner,
            label_schema={"labels": ds.labels},
            overlap=cfg.overlap,
            gold_ratio=cfg.gold_ratio,
            review_rate=cfg.review_rate,
            **engine,
        )
        workforce = self.fixture.workforce
        self.users = {}
        for worker in self.workers:
            user = User.objects.create(
                username=f"{self.fixture.tag}-a{worker.index:02d}-{worker.group}",
                skill_tier=worker.tier,
            )
            Membership.objects.create(
                user=user, organization=workforce, role=Membership.Role.ANNOTATOR
            )
            self.fixture.annotators.append(user)  # so Fixture.cleanup deletes it
            self.users[worker.index] = user
            self.group_of[user.pk] = worker.group
        self.reviewers = []
        for n in range(self.args.reviewers):
            user = User.objects.create(username=f"{self.fixture.tag}-r{n:02d}", skill_tier=3)
            Membership.objects.create(
                user=user, organization=workforce, role=Membership.Role.REVIEWER
            )
            self.fixture.annotators.append(user)
            self.reviewers.append((n, user))

        path = jsonl_file(ds, self.args.seed)
        with path.open("rb") as f:
            job = imports.import_job_create(
                project=self.project,
                created_by=owner,
                upload=File(f, name=path.name),
                filename=path.name,
                enqueue=False,
            )
        job = imports.import_job_run(job_id=job.pk)
        if job.status != ImportJob.Status.SUCCEEDED:
            raise RuntimeError(f"import failed: {job.error} {job.errors[:3]}")
        self.hook.prepare(self.project)
        if self.hook.enabled and (self.cfg.target is not None or self.cfg.bar > 0):
            from annotation import services as annotation_services

            annotation_services.project_quality_refresh(project=self.project)

    def cleanup(self) -> None:
        from annotation.models import ImportJob

        self.hook.cleanup(self.project)

        for stored in ImportJob.objects.filter(project=self.project):
            stored.file.delete(save=False)
        self.fixture.cleanup()

    # annotators

    def has_work(self, user) -> bool:
        """Regular work this annotator may take. Without this check the lease serves
        gold items as filler once no regular item is left for them."""
        from django.db.models import F

        from annotation.models import Item

        return (
            Item.objects.filter(
                project=self.project,
                is_gold=False,
                status=Item.Status.OPEN,
                reserved_count__lt=F("target_annotations"),
            )
            .exclude(assignments__annotator=user)
            .exists()
        )

    def annotate_round(self) -> int:
        from annotation import services

        order = list(self.workers)
        self.rng.shuffle(order)
        done = 0
        for worker in order:
            user = self.users[worker.index]
            if not self.has_work(user):
                continue
            assignment = services.assignment_lease(project=self.project, annotator=user)
            if assignment is None:
                continue
            external_id = assignment.item.external_id
            label = qd.worker_answer(
                self.args.seed,
                worker,
                external_id,
                self.ds.truth[external_id],
                self.ds.classes,
                self.ds.neighbour,
            )
            services.annotation_submit(
                assignment_id=assignment.pk,
                annotator=user,
                answer={"label": label},
                time_spent_ms=8000,
            )
            done += 1
            self.submits += 1
            if self.submits % 2000 == 0:
                print(
                    f"  … {self.cfg.name}: {self.submits:,} submits, "
                    f"{time.perf_counter() - self.t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        return done

    # reviewers

    def review_one(self, reviewer_index: int, reviewer, item) -> None:
        from annotation import services
        from annotation.models import Annotation

        external_id = item.external_id
        truth = self.ds.truth[external_id]
        nth = self.reviews_of.get(external_id, 0)
        self.reviews_of[external_id] = nth + 1
        rng = random.Random(f"review:{self.args.seed}:{reviewer_index}:{external_id}:{nth}")
        right = rng.random() < qd.REVIEWER_ACCURACY
        result_ok = item.result.answer.get("label") == truth
        if result_ok == right:  # a right result kept, or a wrong one missed
            services.review_submit(item_id=item.pk, reviewer=reviewer, verdict="accept")
            return
        # A wrong result caught, or a right one wrongly overturned.
        target = truth if right else qd.wrong_label(rng, truth, self.ds.classes, self.ds.neighbour)
        if self.args.review_action == "reject":
            live = list(
                Annotation.objects.filter(item=item)
                .exclude(status=Annotation.Status.REJECTED)
                .order_by("pk")
                .values_list("pk", "answer")
            )
            # Send back an annotation that disagrees with the reviewer's view.
            for pk, answer in live:
                if answer.get("label") != target:
                    services.review_submit(
                        item_id=item.pk,
                        reviewer=reviewer,
                        verdict="reject",
                        reason="simulated reviewer: wrong label",
                        annotation_id=pk,
                    )
                    return
        services.review_submit(
            item_id=item.pk,
            reviewer=reviewer,
            verdict="correct",
            corrected_answer={"label": target},
        )

    def review_round(self, per_reviewer: int | None) -> int:
        from annotation import services

        done = 0
        for index, reviewer in self.reviewers:
            for _ in range(per_reviewer if per_reviewer is not None else 10**9):
                # As the review page does: lease the next item, then submit the verdict.
                lease = services.review_lease_take(project=self.project, reviewer=reviewer)
                if lease is None:
                    return done
                self.review_one(index, reviewer, lease.item)
                done += 1
        return done

    # the run

    def work_until_done(self) -> None:
        from annotation.selectors import project_counts

        round_no = 0
        while True:
            round_no += 1
            annotated = self.annotate_round()
            reviewed = self.review_round(self.args.reviews_per_round)
            # A finished retrain queues a refresh in production (compute.retraining):
            # the new model's precision is measured before it votes.
            retrained = self.hook.after_round(self.project, round_no)
            refreshed = self.quality_refresh(
                round_no, force=retrained or not (annotated or reviewed)
            )
            if annotated or reviewed or refreshed:
                continue
            counts = project_counts(project=self.project)
            if counts["open"] == 0 and counts["in_review"] == 0:
                return
            raise Stuck(f"nothing to do in round {round_no} but {counts}")

    def quality_refresh(self, round_no: int, *, force: bool) -> bool:
        """What beat does every minute: the quality engine's refresh. A round is 40
        annotator turns, about 10 s of a real centre's time at 8 s a task, so
        every --refresh-every rounds. Returns whether it changed any item."""
        from annotation import services

        if self.cfg.target is None and self.cfg.bar <= 0:
            return False
        if not force and round_no % self.args.refresh_every:
            return False
        summary = services.project_quality_refresh(project=self.project)
        self.quarantined = sorted(
            set(getattr(self, "quarantined", [])) | set(summary["quarantined"])
        )
        return bool(summary["decided"] or summary["to_review"] or summary["reopened"])

    def measure(self) -> tuple[int, int, int, int, int, dict]:
        from django.db.models import Count, Q

        from annotation.models import Annotation, Item, Review

        rows = Item.objects.filter(project=self.project, is_gold=False).values_list(
            "external_id", "result__answer"
        )
        items = correct = unresolved = 0
        for external_id, answer in rows:
            items += 1
            if answer is None:
                unresolved += 1
            elif answer.get("label") == self.ds.truth[external_id]:
                correct += 1
        a = Annotation.objects.filter(project=self.project).aggregate(
            regular=Count("pk", filter=Q(item__is_gold=False)),
            gold=Count("pk", filter=Q(item__is_gold=True)),
            gold_correct=Count("pk", filter=Q(gold_correct=True)),
            rejected=Count("pk", filter=Q(status=Annotation.Status.REJECTED)),
        )
        verdicts = dict(
            Review.objects.filter(project=self.project)
            .values_list("verdict")
            .annotate(n=Count("pk"))
            .order_by("verdict")
        )
        extra = {"unresolved": unresolved, "verdicts": verdicts, **a}
        return items, correct, a["regular"], a["gold"], sum(verdicts.values()), extra

    def row(self, name: str, note: str = "") -> list:
        items, correct, ann, gold, rev, extra = self.measure()
        notes = [note] if note else []
        if extra["unresolved"]:
            notes.append(f"{extra['unresolved']} without a result")
        if extra["rejected"]:
            notes.append(f"{extra['rejected']} rejected")
        if extra["gold"]:
            notes.append(f"gold acc. {extra['gold_correct'] / extra['gold']:.3f}")
        if extra["verdicts"]:
            notes.append("reviews " + " ".join(f"{k} {v}" for k, v in extra["verdicts"].items()))
        quarantined = getattr(self, "quarantined", [])
        if quarantined:
            groups = {}
            for user_id in quarantined:
                group = self.group_of.get(user_id, "?")
                groups[group] = groups.get(group, 0) + 1
            notes.append("quarantined " + ", ".join(f"{n} {g}" for g, n in sorted(groups.items())))
        wall = time.perf_counter() - self.t0
        return row_for(
            name,
            items,
            correct,
            ann,
            gold,
            rev,
            wall,
            "; ".join(notes),
            model_calls=self.hook.calls(self.project),
        )

    def bench_side_ds_row(self, name: str) -> list:
        """Workaround when project_results_infer raises: the same Dawid-Skene over the
        same annotations, scored here. Unreviewed results take the inferred label
        (even one no annotator of the item gave, which is what crashes the
        service); those under the agreement threshold are counted, not reviewed."""
        from annotation import agreement
        from annotation.models import Annotation, Item

        triples = [
            (item_id, annotator_id, answer.get("label"))
            for item_id, annotator_id, answer in Annotation.objects.filter(
                project=self.project, item__is_gold=False
            )
            .exclude(status=Annotation.Status.REJECTED)
            .exclude(item__status=Item.Status.OPEN)
            .order_by("item_id", "pk")
            .values_list("item_id", "annotator_id", "answer")
        ]
        inferred = agreement.dawid_skene(triples)
        given: dict[int, set] = {}
        for item_id, _, label in triples:
            given.setdefault(item_id, set()).add(label)
        threshold = float(self.project.agreement_threshold)
        correct = low = unseen = 0
        for pk, external_id, answer, reviewer, method in Item.objects.filter(
            project=self.project, is_gold=False
        ).values_list(
            "pk", "external_id", "result__answer", "result__reviewed_by", "result__method"
        ):
            label = (answer or {}).get("label")
            if reviewer is None and method != "review" and pk in inferred.labels:
                label = inferred.labels[pk]
                low += inferred.confidence[pk] < threshold
                unseen += label not in given[pk]
            correct += label == self.ds.truth[external_id]
        items, _, ann, gold, rev, _ = self.measure()
        wall = time.perf_counter() - self.t0
        note = (
            f"workaround: agreement.dawid_skene scored in the bench; {unseen} items get a "
            f"label none of their annotators gave; {low} under the threshold (not reviewed)"
        )
        return row_for(name, items, correct, ann, gold, rev, wall, note)

    def probe_filler_gold(self) -> str:
        """After the work is done, does a lease still hand out a gold item?"""
        from annotation import services
        from annotation.models import Project

        if self.cfg.gold_ratio <= 0:
            return ""
        project = Project.objects.get(pk=self.project.pk)
        user = self.users[self.workers[0].index]
        assignment = services.assignment_lease(project=project, annotator=user)
        if assignment is None:
            return ""
        services.assignment_skip(assignment_id=assignment.pk, annotator=user)
        state = "completed" if project.completed_at else "not completed"
        served = "a gold item" if assignment.item.is_gold else "a regular item"
        return f"after the last item ({state} project) a lease still served {served}"


def jsonl_file(ds: qd.Dataset, seed: int) -> Path:
    directory = Path(_common.bench_env()["VAR_DIR"]) / "bench" / "quality"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ds.name}-{len(ds.regular)}-{len(ds.gold)}-s{seed}.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for external_id, text, _ in ds.regular:
            f.write(json.dumps({"external_id": external_id, "text": text}, ensure_ascii=False))
            f.write("\n")
        for external_id, text, truth in ds.gold:
            row = {"external_id": external_id, "text": text, "gold": {"label": truth}}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def run_config(ds, cfg, args, workers) -> tuple[list[list], bool, list[str]]:
    """Rows for one configuration, whether a service raised, and findings."""
    rows, findings = [], []
    sim = Simulation(ds, cfg, args, workers)
    crashed = False
    try:
        sim.setup()
        sim.t0 = time.perf_counter()
        sim.work_until_done()
        rows.append(sim.row(cfg.name.removesuffix("-ds") if cfg.ds else cfg.name))
        if cfg.ds:
            from annotation import services

            try:
                outcome = services.project_results_infer(project=sim.project)
            except Exception as error:
                crashed = True
                traceback.print_exc()
                rows.append(sim.row(cfg.name, f"CRASH in project_results_infer: {error!r}"))
                rows.append(sim.bench_side_ds_row(f"{cfg.name} (bench-side)"))
            else:
                sim.review_round(None)  # what Dawid-Skene sent to review
                rows.append(
                    sim.row(
                        cfg.name,
                        f"DS changed {outcome['changed']}, sent {outcome['to_review']} to review",
                    )
                )
        probe = sim.probe_filler_gold()
        if probe:
            findings.append(f"{ds.name} {cfg.name}: {probe}")
    except Exception as error:
        crashed = True
        traceback.print_exc()
        rows.append([cfg.name, *["-"] * (len(HEADERS) - 2), f"CRASH: {error!r}"])
    finally:
        if getattr(sim, "fixture", None) is not None and not args.keep:
            sim.cleanup()
        elif getattr(sim, "hook", None) is not None:
            sim.hook.stop_server()  # --keep keeps the rows, not the model server
    return rows, crashed, findings


def load_dataset(name: str, args) -> qd.Dataset | None:
    gold = round(args.items * args.gold_items)
    if name == "waimai":
        if not _common.WAIMAI.exists():
            print(f"waimai: {_common.WAIMAI} not found, skipped")
            return None
        return qd.waimai(_common.WAIMAI, args.seed, args.items, gold)
    if name == "topics10":
        return qd.topics10(args.seed, args.items, gold)
    raise SystemExit(f"unknown dataset {name!r} (waimai, topics10)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--items", type=int, default=2000, help="regular items per dataset")
    parser.add_argument(
        "--gold-items",
        type=float,
        default=0.05,
        help="gold items imported, as a share of --items (default 0.05)",
    )
    parser.add_argument("--datasets", default="waimai,topics10")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reviewers", type=int, default=5)
    parser.add_argument(
        "--reviews-per-round",
        type=int,
        default=2,
        help="reviews each reviewer makes per round of 40 annotator turns (default 2)",
    )
    parser.add_argument(
        "--review-action",
        choices=("correct", "reject"),
        default="correct",
        help="what a reviewer does with a result they find wrong (default correct)",
    )
    parser.add_argument(
        "--model",
        choices=("none", "builtin"),
        default="none",
        help="model in the loop: builtin pre-labels with compute/builtin and retrains it on "
        "the approved labels (see ModelHook)",
    )
    parser.add_argument(
        "--retrain-every",
        type=int,
        default=300,
        help="with --model builtin: the project's retrain_every, approved results between "
        "automatic retrains (default 300; 0: pre-label once, never retrain)",
    )
    parser.add_argument(
        "--refresh-every",
        type=int,
        default=6,
        help="rounds between quality refreshes (beat's minute; default 6)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the projects for inspection")
    args = parser.parse_args()
    if args.retrain_every < 0:
        raise SystemExit("--retrain-every: 0 or more")
    configs = [config_parse(c) for c in args.configs.split(",") if c]

    _common.django_setup()
    from django.db import connection

    with connection.cursor() as c:
        # Every lease and submit commits; waiting for the WAL flush doubled the
        # wall time and changes no figure (a crash would only lose bench rows).
        c.execute("SET synchronous_commit = off")
    _common.print_header("quality_sim: simulated workforce through lease, submit, review, DS")
    print("session: synchronous_commit off")
    workers = qd.workforce()
    print(
        "workforce: "
        + ", ".join(f"{c} {g} at {a}" for g, c, a, _ in qd.WORKFORCE)
        + f"; {args.reviewers} reviewers at {qd.REVIEWER_ACCURACY} ({args.review_action}); "
        f"seed {args.seed}; gold items {args.gold_items:.0%} of --items"
    )
    crashed = False
    all_findings = []
    for name in args.datasets.split(","):
        ds = load_dataset(name, args)
        if ds is None:
            continue
        print(
            f"\n## {ds.name}: {len(ds.regular):,} items + {len(ds.gold):,} gold, "
            f"{len(ds.classes)} classes; {ds.source}"
        )
        rows = baselines(ds, workers, args.seed)
        for cfg in configs:
            print(f"load average before {cfg.name}: {_common.load_average()}", flush=True)
            cfg_rows, cfg_crashed, findings = run_config(ds, cfg, args, workers)
            crashed |= cfg_crashed
            all_findings += findings
            rows += cfg_rows
            for row in cfg_rows:
                print("  " + " | ".join(row), flush=True)
        print()
        _common.print_table(HEADERS, rows)
    print(f"\nload average after the run: {_common.load_average()}")
    for finding in all_findings:
        print(f"finding: {finding}")
    if crashed:
        print("a service raised: see the CRASH rows and the tracebacks above", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
