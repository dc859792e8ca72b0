import sys

from homeowner_dagster.cli import main

sys.exit(main())
