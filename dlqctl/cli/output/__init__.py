"""Rendering for the terminal and for scripts; the one place in the CLI that imports Rich.

One module per kind of output: ``console`` (the two consoles, notes, plain tables),
``entries`` (list lines, show), ``stats``, ``writes`` (write summaries, routes, match
counts), ``progress`` (progress bars, replay's console), ``history``, ``demo``, and
``machine`` (JSON, NDJSON, CSV, OpenMetrics) which never imports Rich, so that scripts
asking for machine output do not pay for it. Data goes to stdout; everything else
(progress, prompts, warnings) to stderr.

This file imports nothing: importing ``dlqctl.cli.output.machine`` must not load Rich.
"""
