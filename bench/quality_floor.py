"""What the adaptive rule costs at best, given a kept project's model (issue #10).

    .venv/bin/python bench/quality_floor.py --project 12 --dataset waimai --items 5000
    .venv/bin/python bench/quality_floor.py --project 12 --dataset waimai --items 5000 \
        --targets 0.98,0.95,0.9 --caps 5,3

Reads a project that `bench/quality_sim.py --keep` left in the bench database:
the model's last predictions on its regular items and the model's measured
precision by confidence band (ProjectQuality). It then replays
annotation.quality's decision rule on every item with the simulated workforce
of bench/_quality_data.py, spammers left out (as quarantine does), each vote
weighed by its annotator's TRUE accuracy rather than an estimate, and
annotators drawn at random as the lease serves them; an item at the cap costs
one review (a 0.95 reviewer). No estimation noise, no warm-up, no gold: a floor
for what the engine can reach with that model and that workforce, to tell a
limit of the model from a limit of the engine.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _quality_data as qd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--dataset", choices=("waimai", "topics10"), required=True)
    parser.add_argument("--items", type=int, required=True, help="--items of the sim run")
    parser.add_argument("--seed", type=int, default=1, help="--seed of the sim run")
    parser.add_argument("--targets", default="0.98")
    parser.add_argument("--caps", default="5")
    args = parser.parse_args()
    _common.django_setup()

    from annotation import agreement, quality
    from annotation.models import Item, Project, ProjectQuality
    from annotation.selectors import QualityContext

    gold = round(args.items * 0.05)
    if args.dataset == "waimai":
        ds = qd.waimai(_common.WAIMAI, args.seed, args.items, gold)
    else:
        ds = qd.topics10(args.seed, args.items, gold)
    project = Project.objects.get(pk=args.project)
    context = QualityContext(project)
    state = ProjectQuality.objects.get(project=project)
    bands = quality.model_band_accuracy(state.model_bins)
    if bands is None:
        sys.exit("the model has too few checked predictions to vote")
    print(f"project {project.pk} {project.name}")
    print("model checks by band (right/checked):", [f"{b[1]}/{b[2]}" for b in state.model_bins])
    print("precision the rule uses by band:", [round(b, 3) for b in bands])
    workers = [w for w in qd.workforce() if w.group != "spammer"]
    items = []
    for item in Item.objects.filter(project=project, is_gold=False).only("external_id", "metadata"):
        truth_label = ds.truth[item.external_id]
        suggestion = (item.metadata or {}).get("suggestion") or {}
        cls = context.class_of(suggestion.get("answer") or {})
        confidence = suggestion.get("confidence")
        vote = None
        if cls is not None and isinstance(confidence, int | float):
            vote = (cls, bands[quality.model_band(float(confidence))])
            if not quality.model_informative(vote[0], vote[1], context.priors):
                vote = None
        items.append((item.external_id, truth_label, vote))
    print(f"{len(items):,} items; the model votes on {sum(v is not None for *_, v in items):,}")
    print("| target | cap | human actions/item | accuracy | reviews/item |")
    print("| --- | --- | --- | --- | --- |")
    for target in (float(t) for t in args.targets.split(",")):
        for cap in (int(c) for c in args.caps.split(",")):
            actions = right = reviews = 0
            for external_id, truth_label, vote in items:
                truth = context.index[agreement.stable_key(truth_label)]
                rng = random.Random(f"floor:{args.seed}:{external_id}")
                votes = []
                for n, worker in enumerate(rng.sample(workers, cap), 1):
                    label = qd.worker_answer(
                        args.seed, worker, external_id, truth_label, ds.classes, ds.neighbour
                    )
                    votes.append((context.index[agreement.stable_key(label)], worker.accuracy))
                    post = quality.posterior(context.priors, context.errors, votes, vote)
                    outcome = quality.decide(post, annotations=n, target=target, cap=cap)
                    if outcome.action == "decide":
                        actions += n
                        right += outcome.best == truth
                        break
                    if outcome.action == "review":
                        actions += n + 1
                        reviews += 1
                        right += rng.random() < qd.REVIEWER_ACCURACY
                        break
            n_items = len(items)
            print(
                f"| {target} | {cap} | {actions / n_items:.3f} | {right / n_items:.4f} | "
                f"{reviews / n_items:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
