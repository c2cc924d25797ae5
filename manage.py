#!/usr/bin/env python
"""Django's command-line utility for Tokenworks."""

import os
import sys
from pathlib import Path


def main():
    # platform/ is a source root (see pyproject.toml); put it on the path so
    # manage.py works before, and without, the editable install.
    sys.path.insert(1, str(Path(__file__).resolve().parent / "platform"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
