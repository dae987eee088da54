"""``python -m lazyrich.figures``: regenerate the paper figures (see :func:`lazyrich.figures.regenerate.main`)."""

from lazyrich.figures.regenerate import main

raise SystemExit(main())
