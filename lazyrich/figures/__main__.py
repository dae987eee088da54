"""``python -m lazyrich.figures``: regenerate the paper figures (see :func:`lazyrich.figures.cli.main`)."""

from lazyrich.figures.cli import main

raise SystemExit(main())
