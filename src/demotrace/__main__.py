from demotrace.cli import main
import sys
sys.exit(main())
