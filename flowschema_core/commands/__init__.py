"""The CLI's subcommands beside ``run``, one module each.

Each module has ``add_parser(sub)``, which adds its parser to the ``argparse`` subparsers and
sets ``handler`` (a function of the parsed arguments that returns the exit status). Raise
``flowschema_core.cli.UsageError`` for a mistake in the command (one line, exit 2).
"""
