"""``python -m bench [--quick]``: run every benchmark, print the table, write the results."""

from bench._run import main

raise SystemExit(main())
