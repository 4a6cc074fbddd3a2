"""``python -m sla_sync.cli``: the same as the ``sla-sync`` command."""

from sla_sync.cli.main import main

main()
