"""btd.ctl: btctl, the command-line control client (see docs/CLI.md)."""
