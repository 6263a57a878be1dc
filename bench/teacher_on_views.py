"""How a pretrained teacher answers the training views a student trains on (a KD sanity check).

Feeds the first N training images through the same path an online teacher sees in training:
the pipeline's normaliser (fitted on the first ``--fit-rows`` training images, as a subset run
fits it), the teacher's own input statistics (``Renormalized``), and the batch iterator's
augmentation. Prints the teacher's accuracy against the labels and its mean top probability,
for plain and for augmented views:

    python bench/teacher_on_views.py cifar10:../shared/data/cifar-10-batches-bin \\
        resnet32:../shared/models/akamaster-resnet-cifar10/resnet32-d509ac18.th \\
        --option mean=0.485,0.456,0.406 --option std=0.229,0.224,0.225 --rows 2048

A teacher that is right on plain views but not on augmented ones (or right on neither) is
fed wrongly; one that is right and sure on both gives soft targets close to the labels.
"""

from __future__ import annotations

import argparse
import sys

import torch

from deepmimic.cli.options import parse_options
from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches
from deepmimic.data.spec import open_unlabeled
from deepmimic.errors import DeepMimicError
from deepmimic.teachers.pretrained import Renormalized, load_pretrained


def answers_on_views(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, normalizer: Normalizer, augment: str
) -> tuple[float, float]:
    """(accuracy against ``labels``, mean top softmax probability) of ``model`` on one epoch of views."""
    generator = torch.Generator().manual_seed(0)
    correct, sure, seen = 0, 0.0, 0
    data = TrainingSet(images, {"labels": labels})
    for batch in iterate_batches(data, 256, normalizer, generator, torch.device("cpu"), augment=augment):
        with torch.inference_mode():
            probs = model(batch.x).softmax(dim=1)  # (B, K)
        correct += int((probs.argmax(dim=1) == batch.targets["labels"]).sum())
        sure += float(probs.max(dim=1).values.sum())
        seen += batch.x.shape[0]
    return correct / seen, sure / seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="data spec, e.g. cifar10:../shared/data/cifar-10-batches-bin")
    parser.add_argument("teacher", help="pretrained teacher spec, e.g. resnet32:PATH")
    parser.add_argument("--option", action="append", help="teacher option KEY=VALUE (mean=, std=)")
    parser.add_argument("--rows", type=int, default=2048, help="training images to feed (the first N)")
    parser.add_argument("--fit-rows", type=int, default=10000, help="training images the normaliser is fitted on")
    args = parser.parse_args(argv)
    try:
        if args.rows < 1 or args.fit_rows < 1:
            raise DeepMimicError("--rows and --fit-rows must be positive")
        train = open_unlabeled(args.data, "train")
        loaded = load_pretrained(args.teacher, parse_options(args.option))
        normalizer = Normalizer.fit(train.images[: args.fit_rows])
        model = Renormalized(loaded.model, normalizer, loaded.normalizer).eval()
        images, labels = train.images[: args.rows], train.labels[: args.rows]
        for augment in ("none", "crop-flip"):
            accuracy, sure = answers_on_views(model, images, labels, normalizer, augment)
            shown = f"accuracy {100 * accuracy:.2f}%, mean top probability {sure:.4f}"
            print(f"{augment:>9}: {shown} ({len(labels)} views)")
    except DeepMimicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
