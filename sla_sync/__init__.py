"""sla-sync: service-level agreements on the issue tracker a team already uses."""

__version__ = "0.1.0"
