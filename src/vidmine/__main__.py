import sys

from vidmine.cli import main

sys.exit(main())
