"""``python -m napari_focus_stack.cli``."""
import sys

from . import main

sys.exit(main())
