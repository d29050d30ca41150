import sys

from ganforge.cli.main import main

sys.exit(main())
