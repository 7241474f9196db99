"""`python -m benchmarks.bench`: run the benchmark (from the repository root)."""

import sys

from .cli import main

sys.exit(main())
