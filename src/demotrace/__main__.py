import sys

from demotrace.cli import main

sys.exit(main())
