"""`python -m tinydeep ...` is the `tinydeep` command."""
import sys

from .cli import main

sys.exit(main())
