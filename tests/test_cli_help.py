"""Every option of every subcommand has a line of help that states its default."""

from __future__ import annotations

import argparse

from bloodcell.cli import build_parser


def _options(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*prefix, name))
        elif action.option_strings and action.dest != "help":
            yield " ".join(prefix), parser, action


def test_every_option_has_help_and_its_default():
    missing = []
    for command, parser, action in _options(build_parser()):
        shown = issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
        has_default = action.default not in (None, False, argparse.SUPPRESS)
        if not action.help or (has_default and not shown and "default" not in action.help.lower()):
            missing.append(f"{command} {action.option_strings[0]}")
    assert missing == []


def test_a_default_is_shown_once():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: None)" not in text and "default: lion; adam for small data) (default" not in text


def test_help_and_usage_errors_do_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from bloodcell.cli import main; rc = main(['train', '--help']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
