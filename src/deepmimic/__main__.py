"""``python -m deepmimic`` (also what ``torchrun -m deepmimic`` runs)."""

from deepmimic.cli import main

raise SystemExit(main())
