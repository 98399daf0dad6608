"""Sub-commands of the ``d2m`` CLI.

Every module here exposes ``register(subparsers)``, which adds its
sub-command(s) with ``set_defaults(func=...)``; ``func(args)`` returns the
process exit code. ``d2m_server.cli`` discovers the modules automatically.
"""
