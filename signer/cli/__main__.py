"""`python -m signer.cli`: the signer's commands alone (the `modelsign` program is webhook/cli.py)."""

import sys

from signer.cli.main import main

sys.exit(main())
