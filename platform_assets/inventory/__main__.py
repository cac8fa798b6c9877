import sys

from platform_assets.inventory.cli import main

sys.exit(main(sys.argv[1:]))
