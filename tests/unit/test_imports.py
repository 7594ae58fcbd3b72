"""What importing a part of dlqctl loads: the library stays usable without the CLI."""

from __future__ import annotations

import subprocess
import sys


def test_the_library_imports_without_the_cli() -> None:
    code = (
        "import sys\n"
        "from dlqctl.kafka.consumer import DlqConsumer, PermanentError\n"
        "from dlqctl.db.writer import DlqWriter\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded & {'typer', 'rich', 'click'}, loaded & {'typer', 'rich', 'click'}\n"
        "assert not any(m.startswith('dlqctl.cli') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
