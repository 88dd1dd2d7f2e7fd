"""``python -m moorage.cli``: the same as the ``moorage`` command."""

from moorage.cli.main import main

main()
