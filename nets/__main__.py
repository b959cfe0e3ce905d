import sys

from nets.cli.app import main

sys.exit(main())
